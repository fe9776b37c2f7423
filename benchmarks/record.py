"""Every benchmark run's raw results, kept in the repository.

``benchmarks/results/<script>-<UTC time>.json`` (committed) holds what the run printed, the
structured rows the script hands over (:func:`add`), and where it ran: the commit and whether the
tree had uncommitted changes, the machine (CPU model, cores, memory, GPU), the library versions
and the command. A figure quoted in the docs names its file, so it can be audited and rerun.

    if __name__ == "__main__":
        with recorded(__file__, measures=("src/ame/estimation",)):
            main()

A run that raises writes nothing: a results file is always a finished run.

Two rules keep a quoted figure honest (``docs/macros.py`` renders figures from these files,
``tests/test_docs.py`` applies the rules):

- *Stale*: the file records the SHA-256 of the code it measured (``code``: the script itself and
  every file under the repository paths of ``measures``, the whole package by default). When any
  of them differs now, or is gone, the figures are older than the code: rerun the benchmark. A
  file added since cannot have changed the run unless one of those changed to use it (plug-ins
  are found by entry points in ``pyproject.toml``, not by scanning folders), so it does not count.
- *As written*: ``digest`` is the SHA-256 of the rest of the record; a hand-edited file fails it.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import io
import json
import os
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = RESULTS.parents[1]
_rows: dict | None = None  # the running recording's structured results


def add(key: str, value) -> None:
    """Keep ``value`` (JSON-ready: numbers, strings, lists, dicts) under ``key`` in the results
    file of the running benchmark; outside a recording (an import, a test) it is dropped."""
    if _rows is not None:
        _rows[key] = value


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return round(pages * size / 2**30, 1)


def _git(*args: str) -> str | None:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def _versions() -> dict:
    found = {"python": platform.python_version()}
    for name in ("ame", "torch", "numpy", "scikit-learn", "pandas", "snakemake", "dvc"):
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    return found


def provenance(load_at_start: list[float] | None = None) -> dict:
    """The commit, the machine, the versions and the command of this run."""
    gpu = None
    if "torch" in sys.modules and sys.modules["torch"].cuda.is_available():
        gpu = sys.modules["torch"].cuda.get_device_name(0)
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": _git("rev-parse", "HEAD"),
        "uncommitted_changes": bool(status) if status is not None else None,
        "machine": {
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "memory_gib": _memory_gib(),
            "gpu": gpu,
            "load_average_at_start": load_at_start,
        },
        "versions": _versions(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }


class _Tee(io.TextIOBase):
    def __init__(self, *streams):
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


#: File kinds a benchmark's code is made of (a folder in ``measures`` stands for these inside it).
CODE_SUFFIXES = (".py", ".smk", ".yaml", ".yml", ".json")


def code_digests(paths) -> dict[str, str]:
    """SHA-256 of each code file under ``paths`` (repository-relative files or folders)."""
    found = {}
    for name in paths:
        path = ROOT / name
        files = [path] if path.is_file() else sorted(path.rglob("*"))
        for file in files:
            if file.is_file() and (
                file == path or file.suffix in CODE_SUFFIXES or file.name == "Snakefile"
            ):
                if "__pycache__" not in file.parts:
                    found[file.relative_to(ROOT).as_posix()] = hashlib.sha256(
                        file.read_bytes()
                    ).hexdigest()
    return found


def seal(record: dict) -> str:
    """The digest of a record without its own ``digest`` field."""
    rest = {key: value for key, value in record.items() if key != "digest"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True, default=str).encode()).hexdigest()


def problems(record: dict) -> list[str]:
    """Why a results file's figures may not be quoted now (empty when they may)."""
    if "measures" not in record or "digest" not in record:
        return ["written before results files recorded their code: rerun the benchmark"]
    if record["digest"] != seal(record):
        return ["edited after the benchmark wrote it (its digest does not match)"]
    now = code_digests(record["measures"])
    return [
        f"{name} {'is gone' if name not in now else 'changed'} since the run: rerun the benchmark"
        for name, digest in record["code"].items()
        if now.get(name) != digest
    ]


@contextlib.contextmanager
def recorded(script: str, measures: tuple[str, ...] = ("src/ame",)):
    """Run the block with its standard output copied; when it finishes, write the results file
    with the digests of the script and of the code under ``measures`` (repository paths)."""
    global _rows
    started = datetime.datetime.now(datetime.UTC)
    measured = [Path(script).resolve().relative_to(ROOT).as_posix(), *measures]
    code = code_digests(measured)  # before the run: the code it ran, whatever changes meanwhile
    load = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    where = provenance(load)  # the commit the run started from, not the one it ended on
    printed = io.StringIO()
    _rows = {}
    try:
        with contextlib.redirect_stdout(_Tee(sys.stdout, printed)):
            yield
        rows = _rows
    finally:
        _rows = None
    finished = datetime.datetime.now(datetime.UTC)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{Path(script).stem}-{started:%Y%m%dT%H%M%SZ}.json"
    record = {
        **where,
        "started": started.isoformat(timespec="seconds"),
        "wall_seconds": round((finished - started).total_seconds(), 1),
        "results": rows,
        "printed": printed.getvalue(),
        "measures": measured,
        "code": code,
    }
    record = json.loads(json.dumps(record, default=str))  # the form the file will hold
    record["digest"] = seal(record)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1, default=str) + "\n")
    tmp.replace(path)
    print(f"raw results: {path.relative_to(ROOT)}")
