import subprocess
import sys
import time

import pytest

from embodied.cli import COMMANDS, main


def test_help_is_instant_and_lists_every_command():
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "embodied.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert time.perf_counter() - start < 5.0  # generous: the real figure is ~0.05 s
    for name in COMMANDS:
        assert name in result.stdout


def test_every_command_documents_its_settings(capsys):
    for name in COMMANDS:
        assert main([name, "--help"]) == 0
        assert "settings (defaults)" in capsys.readouterr().out


def test_unknown_command_and_bad_flags_exit_2(capsys):
    assert main(["juggle"]) == 2
    assert "unknown command 'juggle'" in capsys.readouterr().err
    assert main(["collect", "--episodez=3"]) == 2
    assert "unknown key(s) ['episodez']" in capsys.readouterr().err


def test_unknown_task_fails_before_any_work(tmp_path):
    with pytest.raises(KeyError, match="unknown task 'juggle'"):
        main(["collect", "--task", "lift,juggle", "--episodes", "1", "--root", str(tmp_path / "d")])
    assert not any(tmp_path.iterdir())
