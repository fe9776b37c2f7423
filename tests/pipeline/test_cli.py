"""The command line: user errors are one line and exit 2; bugs keep their traceback."""

import subprocess
import sys

import numpy as np
import pytest

from ame import cli
from ame.errors import UserError


def test_a_user_error_is_one_line(tmp_path, capsys):
    code = cli.main(["prepare", "--params", str(tmp_path / "absent.yaml"), "--out", "x.npz"])
    err = capsys.readouterr().err
    assert code == 2
    assert err == f"ame prepare: error: {tmp_path / 'absent.yaml'}: params file not found\n"


def test_a_missing_input_file_is_one_line(tmp_path, capsys):
    from conftest import REPO

    code = cli.main(
        ["gather", "--params", str(REPO / "params.yaml"), "--dataset", str(tmp_path / "d.npz"),
         "--masks", "m.npz", "--submodels", "s", "--out", "o.npz"]
    )  # fmt: skip
    assert code == 2
    assert capsys.readouterr().err.startswith("ame gather: error: ")


def test_user_errors_are_value_errors():
    """Library callers catch them the usual way."""
    assert issubclass(UserError, ValueError)


def verbs():
    """Every verb of the command line, with a value for each of its required options."""
    parser = cli.build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "verb"]
    for name, verb in sub.choices.items():
        argv = [name]
        for action in verb._actions:
            if action.required:
                argv += [action.option_strings[0], "1" if action.type is int else "x"]
        yield argv


@pytest.mark.parametrize("bug", [ValueError, IndexError, KeyError])
@pytest.mark.parametrize("argv", list(verbs()), ids=lambda argv: argv[0])
def test_a_bug_inside_any_command_keeps_its_traceback(monkeypatch, argv, bug):
    """Only UserError and its kin become one line: a bug's ValueError, IndexError or KeyError
    raised inside a command leaves main() as it is (Python prints the traceback, exit 1)."""

    def broken(path):
        raise bug("injected")

    monkeypatch.setattr("ame.pipeline.params.load", broken)
    with pytest.raises(bug, match="injected"):
        cli.main(argv)


def estimate_inputs(tmp_path, n_subsets):
    from conftest import REPO

    from ame.behaviour.gather import Behaviours
    from ame.sampling import Design, MaskSet

    masks = MaskSet.draw(20, n_subsets, Design("grid"), seed=0)
    masks.save(tmp_path / "masks.npz")
    Y = masks.masks[:, :1].astype(float) + np.random.default_rng(0).random((n_subsets, 1))
    Behaviours(np.arange(n_subsets), masks.p, Y, ["q"], [], [0]).save(tmp_path / "b.npz")
    return ["estimate", "--params", str(REPO / "params.yaml"), "--behaviours",
            str(tmp_path / "b.npz"), "--masks", str(tmp_path / "masks.npz"), "--out",
            str(tmp_path / "e.npz"), "--scores", str(tmp_path / "s.csv"), "--prefixes",
            str(tmp_path / "p.npz")]  # fmt: skip


def test_a_bug_in_the_estimator_is_not_turned_into_a_user_error(tmp_path, monkeypatch):
    """Before: cmd_estimate turned any ValueError into a one-line error with exit 2."""
    from ame.estimation import AMEEstimator

    def broken(self, *args, **kwargs):
        raise ValueError("a bug in the solver")

    monkeypatch.setattr(AMEEstimator, "fit", broken)
    with pytest.raises(ValueError, match="a bug in the solver"):
        cli.main(estimate_inputs(tmp_path, 30))


def test_too_few_submodels_for_the_estimator_is_one_line(tmp_path, capsys):
    code = cli.main(estimate_inputs(tmp_path, 5))
    assert code == 2
    assert capsys.readouterr().err == (
        "ame estimate: error: estimation (5 submodels): n_folds: 10 folds need at least as many "
        "subsets, got 5\n"
    )
    assert not (tmp_path / "e.npz").exists() and not (tmp_path / "p.npz").exists()


def fresh_python(script: str) -> subprocess.CompletedProcess:
    """Run ``script`` in a new interpreter, as the shell and every workflow job do."""
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)


def test_a_bug_exits_1_with_its_traceback_from_the_shell():
    done = fresh_python(
        "import sys, ame.cli, ame.pipeline.params as p\n"
        "def broken(path): raise IndexError('injected')\n"
        "p.load = broken\n"
        "sys.exit(ame.cli.main(['prepare', '--out', 'x.npz']))\n"
    )
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr
    assert done.stderr.strip().endswith("IndexError: injected")


def test_the_verbs_that_only_read_estimates_start_without_torch():
    """Every job is a fresh process: torch's import (over a second) is paid only by the verbs
    that train or fit (prepare, train, estimate), not by sample, gather, removal, evaluate,
    validate or the workflow's own start-up."""
    done = fresh_python(
        "import sys\n"
        "import ame.cli, ame.scenarios, ame.pipeline.plan, ame.pipeline.params\n"
        "import ame.behaviour.gather\n"
        "import ame.estimation.results, ame.evaluation.metrics, ame.evaluation.validation\n"
        "import ame.evaluation.removal\n"
        "print(sorted(m for m in ('torch', 'sklearn', 'matplotlib') if m in sys.modules))\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
