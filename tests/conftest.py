"""Shared fixtures: a throw-away copy of the workflow with a tiny configuration."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from filelock import FileLock

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = (
    "Snakefile",
    "dvc.yaml",
    "params.yaml",
    "workflow",
    "profiles",
    "src",
    ".dvcignore",
)
BIN = Path(sys.executable).parent

TINY = {
    # 15 poisons, not 30: at 40 submodels each then carries enough of the behaviour for the
    # debiased AMEs to rank them (tests/quality.py); the LASSO alone selects nothing at this size
    "dataset": {"n_poisons": 15},
    "sampling": {"n_subsets": 40},
    "training": {"steps": 20, "subsets_per_job": 10},
    "behaviour": {"n_queries": 2},
    "estimation": {"n_folds": 3, "n_bootstrap": 0, "n_lambdas": 30, "budget_fractions": [0.5, 1.0]},
    # off: the validation step's tests switch it on (tests/workflow/test_validation.py)
    "validation": {"enabled": False, "n_subsets": 20, "removal_queries": 1},
}

# fewer λ, no bootstrap, no budget prefixes: the tests of sharing and budgets check files and
# jobs, not estimates
FAST = {"estimation": {"n_lambdas": 10, "n_bootstrap": 0, "budget_fractions": [1.0]}}
GIT_COMMIT = ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q"]


def write_params(workdir: Path, overrides: dict) -> dict:
    """Apply ``{section: {key: value}}`` overrides to the workspace's params.yaml."""
    path = workdir / "params.yaml"
    config = yaml.safe_load(path.read_text())
    for section, values in overrides.items():
        config[section].update(values)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return config


def make_workspace(
    path: Path, overrides: dict | None = None, tiny: bool = True, git: bool = False
) -> Path:
    """Copy the workflow to ``path`` with the TINY settings (unless ``tiny`` is false), then
    ``overrides``; with ``git``, make it a git + DVC repository."""
    path.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(
                source,
                path / name,
                symlinks=True,
                ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
            )
        else:
            shutil.copy2(source, path / name)
    shutil.copy2(REPO / ".gitignore", path / ".gitignore")
    write_params(path, TINY if tiny else {})
    write_params(path, overrides or {})
    if git:
        run(["git", "init", "-q"], path)
        run(
            [
                "git",
                "-c",
                "user.email=t@t",
                "-c",
                "user.name=t",
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                "init",
            ],
            path,
        )
        run(["dvc", "init", "-q"], path)
    return path


def study_workspace(path: Path, name: str, settings: dict) -> tuple[Path, dict]:
    """A git + DVC workspace holding ``studies/<name>`` as shipped (no outputs), ``settings``
    laid over the study's params file and committed, as a user's checkout of the study would
    be; returns the study's directory and its params file as shipped."""
    workspace = make_workspace(path, git=True)
    study = workspace / "studies" / name
    shutil.copytree(REPO / "studies" / name, study, ignore=shutil.ignore_patterns(
        "results", "data", "logs", ".snakemake", "dvc.lock", "__pycache__", "tmp"))  # fmt: skip
    shipped = yaml.safe_load((study / "params.yaml").read_text())
    overlay = copy.deepcopy(shipped)
    for section, values in settings.items():
        overlay.setdefault(section, {}).update(values)
    (study / "params.yaml").write_text(yaml.safe_dump(overlay, sort_keys=False))
    run(["git", "add", "-A"], workspace)
    run([*GIT_COMMIT, "-m", "study"], workspace)
    return study, shipped


def run(cmd: list[str], cwd: Path, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run a command with the project's environment first on PATH; return its output."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("SNAKEMAKE_PROFILE", None)
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
        )
    return result


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(["snakemake", *args, "--cores", "2"], workdir, check=check)


def jobs_run(output: str, rule: str) -> int:
    """Number of jobs of ``rule`` in a Snakemake job stats table (0 when the rule ran none)."""
    match = re.search(rf"^{rule}\s+(\d+)$", output, re.MULTILINE)
    return int(match.group(1)) if match else 0


def file_state(root: Path, *folders: str) -> dict[str, tuple[int, int, int]]:
    """(inode, size, mtime in ns) of every file under ``root/folder``, by path relative to root:
    equal states mean nothing was created, rewritten or removed there."""
    state = {}
    for folder in folders:
        for path in sorted((root / folder).rglob("*")):
            if path.is_file():
                st = path.stat()
                state[str(path.relative_to(root))] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return state


@pytest.fixture
def single_thread():
    """Tiny problems run faster on one thread, and much faster on a shared, oversubscribed CPU."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def workspace(tmp_path) -> Path:
    return make_workspace(tmp_path / "ws")


def copy_workspace(source: Path, dest: Path) -> Path:
    return Path(shutil.copytree(source, dest, symlinks=True))


@dataclass(frozen=True)
class Committed:
    path: Path
    repro_stdout: str  # what the first `dvc repro`, which built it, printed


@pytest.fixture(scope="session")
def committed(tmp_path_factory, worker_id) -> Committed:
    """The tiny study (TINY, FAST) as a git + DVC repository after `dvc repro`, everything
    committed. Built once per session (a minute and a half of training and start-up), under
    pytest-xdist once for all workers (a file lock in their shared temporary directory); tests
    that change it work on a copy (``copy_workspace``)."""
    if worker_id == "master":  # no xdist: this session's own directory
        return build_committed(tmp_path_factory.mktemp("committed"))
    shared = tmp_path_factory.getbasetemp().parent  # one per session, shared by its workers
    with FileLock(str(shared / "committed.lock")):
        return build_committed(shared / "committed")


def build_committed(root: Path) -> Committed:
    """Build the committed tiny study under ``root`` unless a finished one is there."""
    done = root / "repro.stdout"
    if not done.exists():
        workspace = make_workspace(root / "ws", FAST, git=True)
        repro = run(["dvc", "repro"], workspace)
        run(["git", "add", "-A"], workspace)
        run([*GIT_COMMIT, "-m", "the tiny study, 40 subsets"], workspace)
        done.write_text(repro.stdout)
    return Committed(root / "ws", done.read_text())
