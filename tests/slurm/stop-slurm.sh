#!/usr/bin/env bash
# Stop what tests/slurm/start-slurm.sh started, by the pid files it left in $SLURM_CI_DIR (never by
# process name): slurmd, slurmctld, and munged only if that script started it. Restores any
# /etc/slurm configuration it had moved aside. Safe to run twice.
SLURM_CI_DIR=${SLURM_CI_DIR:-/tmp/slurm-ci}
MARK="# written by tests/slurm/start-slurm.sh"

stop() {  # stop <pid file> <expected process name>
  local pidfile=$1 name=$2 pid
  [ -s "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  # The pid must still belong to the expected program (pids are reused).
  if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$pidfile"
}

# Cancel the jobs still queued or running on this cluster (only if its controller is the one
# started by start-slurm.sh): their processes would outlive slurmd otherwise.
if [ -s "$SLURM_CI_DIR/slurmctld.pid" ] \
    && [ "$(cat "/proc/$(cat "$SLURM_CI_DIR/slurmctld.pid")/comm" 2>/dev/null)" = slurmctld ]; then
  jobs=$(squeue -h -t PENDING,RUNNING,CONFIGURING,COMPLETING -o %i 2>/dev/null || true)
  if [ -n "$jobs" ]; then
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null || true
    for _ in $(seq 20); do
      [ -z "$(squeue -h -t RUNNING,COMPLETING -o %i 2>/dev/null)" ] && break; sleep 0.5
    done
  fi
fi

stop "$SLURM_CI_DIR/slurmd.pid" slurmd
stop "$SLURM_CI_DIR/slurmctld.pid" slurmctld
stop "$SLURM_CI_DIR/munged.started" munged

for f in /etc/slurm/slurm.conf /etc/slurm/gres.conf; do
  if [ -e "$f" ] && head -n1 "$f" | grep -qxF "$MARK"; then
    rm -f "$f"
    [ -e "$f.before-slurm-ci" ] && mv "$f.before-slurm-ci" "$f"
  fi
done
exit 0
