"""The workflow on a real single-node SLURM cluster, through the cluster profile profiles/slurm.

The module fixture installs SLURM (Debian packages) when it is missing and starts a cluster with
one node, one partition ``debug`` and two fake GPUs (tests/slurm/start-slurm.sh); it needs root.
When the cluster cannot be started the test is skipped, or fails when the ``CI`` environment
variable is set. A tiny configuration (40 subsets, 10 per training job: 4 training jobs, batched
2 per submission) runs once with the SLURM profile and once locally; the results must agree.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from conftest import make_workspace
from quality import check_run

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "tests" / "slurm"
SNAKEMAKE = Path(sys.executable).with_name("snakemake")

# conftest.TINY: 40 subsets, 10 per training job, so 4 training jobs; 2 per submission.
GROUP_SIZE = 2
RUN_TIMEOUT_S = 900

# "Job <uuid> has been submitted with SLURM jobid 12 (log: /…/group_train_train/12.log)."
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: (.+?)\)\.$", re.M)
SBATCH_CALL = re.compile(r"^sbatch call: (.*)$", re.M)
VISIBLE = re.compile(r"'CUDA_VISIBLE_DEVICES': '(\d+)'")


def _unavailable(reason: str) -> None:
    """Skip for want of a cluster, except in CI (CI set), where the SLURM test must run."""
    if os.environ.get("CI"):
        pytest.fail(f"SLURM test cluster unavailable (CI is set, so this fails): {reason}")
    pytest.skip(f"SLURM test cluster unavailable: {reason}")


@pytest.fixture(scope="module")
def slurm_cluster():
    """A running single-node cluster (partition debug, 2 fake GPUs); stopped at module end."""
    if os.name != "posix" or os.geteuid() != 0:
        _unavailable("needs root to install and start slurmctld, slurmd and munged")
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        _unavailable("SLURM is not installed and apt-get is missing")
    # State and pid files live outside pytest's basetemp, which another pytest session may prune
    # while the daemons run; without its pid files stop-slurm.sh could not stop them.
    state_dir = tempfile.mkdtemp(prefix="ame-slurm-ci-")
    env = {**os.environ, "SLURM_CI_DIR": state_dir}

    def stop() -> None:
        subprocess.run(["bash", str(SCRIPTS / "stop-slurm.sh")], env=env, check=False)
        shutil.rmtree(state_dir, ignore_errors=True)

    started = time.monotonic()
    try:
        start = subprocess.run(
            ["bash", str(SCRIPTS / "start-slurm.sh")],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        failure = "" if start.returncode == 0 else f"start-slurm.sh failed:\n{start.stderr}"
    except subprocess.TimeoutExpired:
        failure = "start-slurm.sh did not finish within 600 s"
    if failure:
        stop()
        _unavailable(failure)
    print(f"\nSLURM cluster up in {time.monotonic() - started:.1f} s")
    try:
        yield env
    finally:
        stop()


def _adapt_slurm_profile(workdir: Path) -> None:
    """The edits a user makes to profiles/slurm, for this cluster, plus quicker status checks."""
    path = workdir / "profiles" / "slurm" / "profile.yaml"
    profile = yaml.safe_load(path.read_text())
    profile["set-resources"]["train"]["slurm_partition"] = "debug"
    profile["group-components"]["train"] = GROUP_SIZE
    profile["slurm-no-account"] = True  # the test cluster has no accounts
    profile["slurm-status-command"] = "squeue"  # ... and no accounting database
    profile["slurm-init-seconds-before-status-checks"] = 2  # first status check after 2 s, not 40
    profile["slurm-keep-successful-logs"] = True  # job logs for the failure message
    profile["latency-wait"] = 5  # one node: no shared-filesystem lag
    profile["retries"] = 0  # fail at once
    for resources in [profile["default-resources"], *profile["set-resources"].values()]:
        resources["mem_mb"] = 2000  # the node has the machine's memory less 1 GiB
    path.write_text(yaml.safe_dump(profile, sort_keys=False))


def _snakemake(workdir: Path, args: list[str], env: dict, log: Path) -> subprocess.Popen:
    with log.open("w") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [str(SNAKEMAKE), *args],
            cwd=workdir,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            text=True,
        )


def _finish(process: subprocess.Popen, log: Path, what: str) -> float:
    started = time.monotonic()
    try:
        rc = process.wait(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.terminate()
        process.wait(timeout=60)
        pytest.fail(f"{what} run exceeded {RUN_TIMEOUT_S} s:\n{log.read_text()[-6000:]}")
    assert rc == 0, f"{what} run failed (rc {rc}):\n{log.read_text()[-6000:]}"
    return time.monotonic() - started


def _group(slurm_log: str) -> str:
    """A submission's group, from its log path <slurm-logdir>/group_<group>_<rules>/<id>.log."""
    folder = next(part for part in Path(slurm_log).parts if part.startswith(("group_", "rule_")))
    return folder.split("_")[1]


def _job_logs(workdir: Path) -> str:
    logs = sorted((workdir / "logs").rglob("*.log"))
    return "\n".join(f"== {p.relative_to(workdir)}\n{p.read_text()[-1500:]}" for p in logs)


def test_workflow_on_slurm_matches_local_run(slurm_cluster, tmp_path):
    env = {key: value for key, value in slurm_cluster.items() if key != "SNAKEMAKE_PROFILE"}
    slurm_dir = make_workspace(tmp_path / "slurm")
    local_dir = make_workspace(tmp_path / "local")
    _adapt_slurm_profile(slurm_dir)
    params = yaml.safe_load((slurm_dir / "params.yaml").read_text())
    n_train_jobs = math.ceil(
        params["sampling"]["n_subsets"] / params["training"]["subsets_per_job"]
    )

    # The local reference runs alongside: the SLURM run mostly waits for status checks.
    started = time.monotonic()
    local = _snakemake(local_dir, ["--cores", "2"], env, tmp_path / "local.log")
    slurm = _snakemake(
        slurm_dir, ["--profile", "profiles/slurm", "--verbose"], env, tmp_path / "slurm.log"
    )
    try:
        slurm_s = _finish(slurm, tmp_path / "slurm.log", "SLURM")
    except BaseException:
        print(_job_logs(slurm_dir))
        local.terminate()
        local.wait(timeout=60)
        raise
    _finish(local, tmp_path / "local.log", "local")
    print(f"SLURM run {slurm_s:.0f} s; both runs {time.monotonic() - started:.0f} s")

    # The run went through SLURM: every step submitted, none run on this host.
    output = (tmp_path / "slurm.log").read_text()
    assert re.findall(r"^localrule (\w+):", output, re.M) == ["all"]
    logs = dict(SUBMITTED.findall(output))
    submissions = {jobid: _group(log) for jobid, log in logs.items()}
    groups = sorted(submissions.values())
    print(f"sbatch submissions: {dict(sorted(submissions.items()))}")

    # Training jobs are batched GROUP_SIZE per submission; the CPU steps make two more.
    train_ids = [jobid for jobid, group in submissions.items() if group == "train"]
    assert len(train_ids) == math.ceil(n_train_jobs / GROUP_SIZE) == 2, groups
    assert groups == ["analysis", "setup", "train", "train"], groups

    # Each training submission asked SLURM for one GPU, and only those did.
    calls = SBATCH_CALL.findall(output)
    assert len(calls) == len(submissions), calls
    assert sum("/group_train_" in call for call in calls) == len(train_ids), calls
    for call in calls:
        assert ("--gpus=1" in call) == ("/group_train_" in call), call
    for jobid, group in submissions.items():
        job = subprocess.run(
            ["scontrol", "show", "job", jobid], env=env, capture_output=True, text=True
        ).stdout
        assert "JobState=COMPLETED" in job, job
        assert ("gres:gpu:1" in job) == (group == "train"), job
    # ... and SLURM gave each one a (fake) device: the job environment, as logged by the jobstep.
    visible = {jobid: VISIBLE.findall(Path(logs[jobid]).read_text()) for jobid in submissions}
    assert all(visible[jobid] for jobid in train_ids), visible
    assert not any(visible[jobid] for jobid in submissions if jobid not in train_ids), visible

    # The same results as a local run.
    for name in ["scores.csv", "metrics.json", "report.md"]:
        assert (slurm_dir / "results" / name).is_file(), name
    scores = [(d / "results" / "scores.csv").read_bytes() for d in (slurm_dir, local_dir)]
    assert scores[0] == scores[1]
    metrics = [
        json.loads((d / "results" / "metrics.json").read_text()) for d in (slurm_dir, local_dir)
    ]
    assert metrics[0].keys() == metrics[1].keys()
    assert metrics[0] == metrics[1]
    check_run(slurm_dir / "results/estimates.npz", slurm_dir / "data/prepared/dataset.npz")
