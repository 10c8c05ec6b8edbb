"""SIGKILL `embodied pipeline` at random moments in its stages, rerun it, and compare with an
undisturbed run (`benchmarks/kill_anywhere.py` holds the harness and the checks)."""

import pytest

from benchmarks.kill_anywhere import main as kill_anywhere

pytestmark = pytest.mark.sim


def _killed_and_compared(tmp_path, fault_report, argv: list[str]) -> None:
    figures = kill_anywhere([*argv, f"--workdir={tmp_path}", f"--json={tmp_path}/kills.json"])
    survived = all(figures["checks"].values())
    for stage, kills in figures["kills"].items():
        for _ in range(kills):
            fault_report("stage killed", stage, "survived" if survived else "lost")
    failed = [name for name, passed in figures["checks"].items() if not passed]
    assert not failed, f"after the kills: {failed}; see {tmp_path}/pipeline.log"
    assert figures["kills_injected"] >= 1


def test_killed_in_collect_training_and_rl_it_resumes_to_the_same_end(tmp_path, fault_report):
    _killed_and_compared(tmp_path, fault_report,
                         ["--kills=1", "--stages=collect,train_policy,finetune"])  # fmt: skip


@pytest.mark.slow
def test_killed_three_times_in_every_stage_it_resumes_to_the_same_end(tmp_path, fault_report):
    _killed_and_compared(tmp_path, fault_report, ["--kills=3", "--seed=1"])
