"""benchmarks/stale.py: a quoted run whose code changed is listed with its command, and
rerun by it; a missing one is named."""

from __future__ import annotations

import json
import sys

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import record  # noqa: E402
import stale  # noqa: E402


def write_run(folder, name: str, digest: str) -> None:
    run = {
        "command": "python benchmarks/x.py --seeds 0 1",
        "measures": ["benchmarks/stale.py"],
        "code": {"benchmarks/stale.py": digest},
        "results": {},
        "printed": "",
    }
    run["digest"] = record.seal(run)
    (folder / f"{name}.json").write_text(json.dumps(run))


def test_a_changed_run_is_listed_with_its_command_and_rerun(tmp_path, monkeypatch, capsys):
    now = record.code_digests(["benchmarks/stale.py"])["benchmarks/stale.py"]
    write_run(tmp_path, "x-20260101T000000Z", "0" * 64)
    write_run(tmp_path, "y-20260101T000000Z", now)
    monkeypatch.setattr(stale, "RESULTS", tmp_path)
    names = {"x-20260101T000000Z", "y-20260101T000000Z", "z-20260101T000000Z"}
    monkeypatch.setattr(stale, "quoted", lambda: names)
    assert stale.stale() == {
        "x-20260101T000000Z": (
            "python benchmarks/x.py --seeds 0 1",
            ["benchmarks/stale.py changed since the run: rerun the benchmark"],
        ),
        "z-20260101T000000Z": (None, ["no such results file"]),
    }
    ran = []
    monkeypatch.setattr(stale, "rerun", lambda command: ran.append(command) or 0)
    monkeypatch.setattr(sys, "argv", ["stale.py", "--run"])
    stale.main()
    assert ran == ["python benchmarks/x.py --seeds 0 1"]
    assert "rerun: python benchmarks/x.py --seeds 0 1" in capsys.readouterr().out


def test_rerun_runs_the_recorded_command_with_this_interpreter(monkeypatch):
    calls = []

    class Done:
        returncode = 0

    monkeypatch.setattr(stale.subprocess, "run", lambda args, **kw: calls.append(args) or Done())
    assert stale.rerun("python3.11 benchmarks/x.py --seeds 0 1") == 0
    assert calls == [[sys.executable, "benchmarks/x.py", "--seeds", "0", "1"]]
