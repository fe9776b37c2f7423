"""The command line: user errors are one line and exit 2; bugs keep their traceback."""

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


def test_a_bug_is_not_disguised_as_a_user_error(monkeypatch):
    def broken(args):
        raise KeyError("internal")

    monkeypatch.setattr(cli, "cmd_prepare", broken)
    with pytest.raises(KeyError, match="internal"):
        cli.main(["prepare", "--out", "x.npz"])


def test_user_errors_are_value_errors():
    """Library callers catch them the usual way."""
    assert issubclass(UserError, ValueError)
