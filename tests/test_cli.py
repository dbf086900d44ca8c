"""The command line: subcommand discovery and the global options."""

from __future__ import annotations

import pytest
import torch

from avvp import cli


def test_every_command_module_registers_a_subcommand():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == {m.replace("_", "-") for m in cli.command_modules()}


@pytest.mark.parametrize("argv, name", [
    (["train", "--seed", "2"], "train"),
    (["--threads", "2", "import-features", "x"], "import_features"),
    (["-v", "--threads", "3"], None),
])
def test_command_name_skips_the_threads_value(argv, name):
    assert cli._command_name(argv) == name


def test_threads_sets_torch_threads_before_the_command_runs(tmp_path, monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(torch, "set_num_threads", seen.append)
    missing = tmp_path / "nowhere"
    code = cli.main(["--threads", "3", "manifest", str(missing), "--out", str(tmp_path / "out")])
    assert seen == [3]
    assert code == 1 and str(missing) in capsys.readouterr().err


def test_threads_must_be_positive(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--threads", "0", "manifest", "x", "--out", "y"])
    assert exc.value.code == 2 and "0 is not a positive integer" in capsys.readouterr().err
