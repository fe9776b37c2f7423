"""The benchmarks whose figures the docs quote and whose code changed since they ran: list
them, or rerun them.

    .venv/bin/python benchmarks/stale.py          # each stale results file, why, its command
    .venv/bin/python benchmarks/stale.py --run    # rerun those commands, one after another

A change to the package makes every quoted run that measured it stale (``record.problems``),
and ``tests/test_docs.py`` fails until the figures are measured again. Each rerun writes a new
results file, which the pages pick up through ``latest(benchmark, arguments)``; commit it. A
page that quotes a results file by name must be edited to the new name.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shlex
import subprocess
import sys

from record import RESULTS, ROOT, problems


def macros():
    """A fresh copy of the docs build's macros (``docs/macros.py``: which runs a page quotes)."""
    spec = importlib.util.spec_from_file_location("docs_macros", ROOT / "docs" / "macros.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def quoted() -> set[str]:
    """Every results file a page of the docs quotes."""
    pages, docs = (ROOT / "docs").rglob("*.md"), macros()
    return {name for page in pages for name in docs.quoted(page.read_text())}


def stale() -> dict[str, tuple[str | None, list[str]]]:
    """Quoted results files that may not be quoted now: name -> (command, problems)."""
    found = {}
    for name in sorted(quoted()):
        path = RESULTS / f"{name}.json"
        if not path.is_file():
            found[name] = (None, ["no such results file"])
        elif why := problems(record := json.loads(path.read_text())):
            found[name] = (record["command"], why)
    return found


def rerun(command: str) -> int:
    """Run a recorded command (``python benchmarks/x.py ...``) with this interpreter."""
    script, *arguments = shlex.split(command)[1:]
    return subprocess.run([sys.executable, script, *arguments], cwd=ROOT, check=False).returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="store_true", help="rerun every stale command")
    args = parser.parse_args()
    found = stale()
    commands = sorted({command for command, _ in found.values() if command})
    for name, (command, why) in found.items():
        print(f"{name}: {why[0]}" + (f" (and {len(why) - 1} more)" if len(why) > 1 else ""))
        print(f"    rerun: {command}" if command else "    a page names it: point it at a run")
    if not found:
        print("every quoted results file measured the code as it is")
    if args.run:
        failed = [command for command in commands if rerun(command) != 0]
        if failed:
            sys.exit("benchmarks failed: " + "; ".join(failed))


if __name__ == "__main__":
    main()
