"""Crash safety and determinism with the real workflow.

A run killed with SIGKILL (the whole Snakemake process group, while packs are training) leaves
no file a rerun would accept as finished: every submodel file is written atomically, and the
pack jobs that were running stay marked incomplete, so Snakemake (``rerun-incomplete`` in the
profile) deletes their outputs and trains them again. The rerun needs ``snakemake --unlock``
first (the killed run could not remove its lock; Snakemake's message says so), retrains no pack
whose job had finished, and ends with the same bytes as a run that was never interrupted. Two
independent workspaces with the same params produce identical masks, submodels, behaviours,
AMEs and metrics on CPU.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import BIN, file_state, jobs_run, make_workspace, run, snakemake
from quality import check_run

from ame.artifacts import load_npz

pytestmark = pytest.mark.slow

N_PACKS, PER_PACK = 8, 10
# Long enough to be caught mid-training: 8 packs of 10 subsets, 200 steps, one subset at a time.
LONG = {
    "sampling": {"n_subsets": N_PACKS * PER_PACK},
    "training": {"steps": 200, "subsets_per_job": PER_PACK, "vectorize": False},
    "estimation": {"n_lambdas": 10, "n_bootstrap": 0, "budget_fractions": [1.0]},
}
COMPARED = (
    "results/masks.npz",
    "results/behaviours.npz",
    "results/estimates.npz",
    "results/scores.csv",
    "results/metrics.json",
)


def submodel_files(workspace: Path) -> dict[int, Path]:
    return {
        int(p.stem.split("_")[1]): p
        for p in (workspace / "results/submodels").glob("*/subset_*.npz")
    }


def marked_incomplete(workspace: Path) -> set[str]:
    """Outputs of the jobs Snakemake recorded as started and not finished."""
    folder = workspace / ".snakemake/incomplete"
    names = (
        [p.name for p in folder.iterdir() if not p.name.startswith("@")] if folder.is_dir() else []
    )
    return {base64.urlsafe_b64decode(name).decode() for name in names}


def finished_packs(workspace: Path) -> set[int]:
    """Packs whose ten files exist and whose job Snakemake does not hold as incomplete."""
    present = submodel_files(workspace)
    pending = {
        int(Path(p).stem.split("_")[1]) for p in marked_incomplete(workspace) if "/subset_" in p
    }
    return {
        pack
        for pack in range(N_PACKS)
        if all(
            i in present and i not in pending for i in range(pack * PER_PACK, (pack + 1) * PER_PACK)
        )
    }


def group_processes(pgid: int) -> dict[int, str]:
    """Live processes of a process group: pid -> command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            found[int(entry.name)] = cmdline
    return found


def kill_during_training(workspace: Path, timeout: float = 300) -> dict:
    """Start ``snakemake``, SIGKILL its process group once a pack has finished while another is
    training; return what was on disk and running at that moment."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("SNAKEMAKE_PROFILE", None)
    log = (workspace / "killed-run.log").open("w")
    proc = subprocess.Popen(
        [str(BIN / "snakemake"), "--cores", "2"],
        cwd=workspace,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    try:
        while True:
            assert proc.poll() is None, "the run ended before it could be killed mid-training"
            assert time.monotonic() < deadline, "no pack finished in time"
            training = [cmd for cmd in group_processes(proc.pid).values() if " train " in cmd]
            if training and finished_packs(workspace):
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None and time.monotonic() >= deadline:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()
    for _ in range(100):  # SIGKILL is asynchronous: wait until the whole group is gone
        if not group_processes(proc.pid):
            break
        time.sleep(0.05)
    assert not group_processes(proc.pid), "a process of the killed run survived"
    return {
        "training": training,
        "finished": finished_packs(workspace),
        "state": file_state(workspace, "results/submodels"),
    }


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    workspace = make_workspace(tmp_path_factory.mktemp("resume") / "uninterrupted", LONG)
    snakemake(workspace)
    return workspace


@pytest.fixture(scope="module")
def resumed(tmp_path_factory) -> dict:
    """A workspace killed mid-training, then unlocked and rerun to the end."""
    workspace = make_workspace(tmp_path_factory.mktemp("resume") / "killed", LONG)
    killed = kill_during_training(workspace)
    for index, path in submodel_files(workspace).items():  # atomic: no half-written file
        assert load_npz(path, required=("logits", "fingerprint")), index
    stale_lock = snakemake(workspace, check=False)
    unlock = run([str(BIN / "snakemake"), "--unlock"], workspace)
    rerun = snakemake(workspace)
    return {
        "workspace": workspace,
        "killed": killed,
        "stale_lock": stale_lock,
        "unlock": unlock,
        "rerun": rerun,
    }


def test_a_stale_lock_is_reported_with_the_recipe(resumed):
    result = resumed["stale_lock"]
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "LockException" in output and "--unlock" in output


def test_rerun_trains_only_the_packs_whose_job_had_not_finished(resumed):
    workspace, killed = resumed["workspace"], resumed["killed"]
    finished = killed["finished"]
    assert killed["training"] and 0 < len(finished) < N_PACKS
    output = resumed["rerun"].stdout + resumed["rerun"].stderr
    assert jobs_run(output, "train") == N_PACKS - len(finished)
    before, after = killed["state"], file_state(workspace, "results/submodels")
    for name, state in after.items():
        index = int(Path(name).stem.split("_")[1])
        if index // PER_PACK in finished:
            assert before[name] == state, f"{name}: retrained although its job had finished"
        else:
            assert before.get(name) != state, f"{name}: kept from a job that was killed"
    assert len(after) == N_PACKS * PER_PACK


def test_resumed_and_uninterrupted_runs_are_byte_identical(resumed, uninterrupted):
    """Also the determinism check: two workspaces, same params, same bytes (CPU)."""
    workspace = resumed["workspace"]
    for name in COMPARED:
        assert (workspace / name).read_bytes() == (uninterrupted / name).read_bytes(), name
    check_run(workspace / "results/estimates.npz", workspace / "data/prepared/dataset.npz")
    ours, theirs = submodel_files(workspace), submodel_files(uninterrupted)
    assert sorted(ours) == sorted(theirs) == list(range(N_PACKS * PER_PACK))
    for index in ours:
        assert ours[index].read_bytes() == theirs[index].read_bytes(), index
