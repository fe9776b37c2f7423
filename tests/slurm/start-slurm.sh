#!/usr/bin/env bash
# Start a single-node SLURM cluster for tests: one node "localhost" with every CPU, the memory
# less 1 GiB, two fake GPUs (GRES without a device behind them) and one partition "debug".
# Root container, no systemd, no accounting database. Installs the Debian packages if missing.
#
# What this script starts is recorded in $SLURM_CI_DIR (pid files); tests/slurm/stop-slurm.sh
# stops exactly that and nothing else. A munged that was already running is used, not restarted,
# and is never stopped. Exit status: 0 when the node is idle and accepts jobs, 1 otherwise.
set -euo pipefail
SLURM_CI_DIR=${SLURM_CI_DIR:-/tmp/slurm-ci}
MARK="# written by tests/slurm/start-slurm.sh"
die() { echo "start-slurm: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (it writes /etc/slurm and starts the daemons)"
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  command -v apt-get >/dev/null || die "SLURM is not installed and there is no apt-get"
  echo "start-slurm: installing slurmctld slurmd slurm-client munge" >&2
  apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurmctld slurmd slurm-client munge >/dev/null || die "apt-get install failed"
fi

# A controller that is not ours would be reconfigured under its feet: refuse.
for daemon in slurmctld slurmd; do
  if pgrep -x "$daemon" >/dev/null; then
    pidfile="$SLURM_CI_DIR/$daemon.pid"
    if [ -s "$pidfile" ] && pgrep -x "$daemon" | grep -qx "$(cat "$pidfile")"; then
      die "$daemon from an earlier start is still running (pid $(cat "$pidfile")); run stop-slurm.sh"
    fi
    die "a $daemon not started by this script is running; refusing to replace its configuration"
  fi
done

mkdir -p "$SLURM_CI_DIR"/{state,spool,log} /etc/slurm /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
rm -f "$SLURM_CI_DIR"/*.pid "$SLURM_CI_DIR"/munged.started

if ! pgrep -x munged >/dev/null; then
  [ -s /etc/munge/munge.key ] || { mungekey --create >/dev/null 2>&1 || \
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; \
    chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
  runuser -u munge -- /usr/sbin/munged || die "munged did not start"
  for _ in $(seq 20); do [ -s /run/munge/munged.pid ] && break; sleep 0.1; done
  # Only a munged started here is recorded, so only that one is ever stopped.
  cp /run/munge/munged.pid "$SLURM_CI_DIR/munged.started"
fi

# Keep configuration files that were not written by this script; stop-slurm.sh puts them back.
for f in /etc/slurm/slurm.conf /etc/slurm/gres.conf; do
  if [ -e "$f" ] && ! head -n1 "$f" | grep -qxF "$MARK"; then mv "$f" "$f.before-slurm-ci"; fi
done

CPUS=$(nproc)
MEM_MB=$(( $(awk '/MemTotal/{print $2}' /proc/meminfo) / 1024 - 1024 ))
# The path must be /etc/slurm/slurm.conf: the snakemake jobstep plugin drops SLURM_CONF (and every
# other SLURM_* variable) from the environment of the srun it starts inside a job.
cat > /etc/slurm/slurm.conf <<CONF
$MARK
ClusterName=ci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$SLURM_CI_DIR/state
SlurmdSpoolDir=$SLURM_CI_DIR/spool
SlurmctldPidFile=$SLURM_CI_DIR/slurmctld.pid
SlurmdPidFile=$SLURM_CI_DIR/slurmd.pid
SlurmctldLogFile=$SLURM_CI_DIR/log/slurmctld.log
SlurmdLogFile=$SLURM_CI_DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
# Finished jobs stay visible to squeue for 10 minutes (no accounting DB: squeue is the status source)
MinJobAge=600
MpiDefault=none
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB Gres=gpu:fake:2 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
# Two fake GPUs, one File= per GPU (a count without files makes the node INVAL).
cat > /etc/slurm/gres.conf <<CONF
$MARK
NodeName=localhost Name=gpu Type=fake File=/dev/null
NodeName=localhost Name=gpu Type=fake File=/dev/zero
CONF

/usr/sbin/slurmctld || die "slurmctld did not start (see $SLURM_CI_DIR/log/slurmctld.log)"
/usr/sbin/slurmd -N localhost || die "slurmd did not start (see $SLURM_CI_DIR/log/slurmd.log)"
for _ in $(seq 30); do
  state=$(sinfo -h -o %T 2>/dev/null || true)
  [ "$state" = idle ] && { echo "start-slurm: node idle, partition debug up" >&2; exit 0; }
  sleep 1
done
die "node did not become idle (state: ${state:-unknown}); see $SLURM_CI_DIR/log/"
