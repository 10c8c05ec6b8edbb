import subprocess
import sys
import time

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


def test_unknown_task_fails_before_any_work_in_one_line(tmp_path, capsys):
    args = ["--task", "lift,juggle", "--episodes", "1", "--root", str(tmp_path / "d")]
    assert main(["collect", *args]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "embodied collect: unknown task 'juggle'; known tasks: door, lang_cubes, lift, "
        "pick_place_can, stack"
    ]
    assert not any(tmp_path.iterdir())


def test_help_lists_the_policy_and_world_model_settings(capsys):
    assert main(["train-policy", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--policy.type='embodied_vla'" in out and "--policy.chunk_size=10" in out
    assert "--policy.input_features" not in out  # filled from the dataset, not a flag
    assert main(["train-world-model", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--world_model.frame_stride=1" in out and "--world_model.stats" not in out
