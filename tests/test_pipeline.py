import json

import pytest
from tiny import pipeline_config

from embodied.pipeline import MujocoBaseline, PipelineConfig, run_pipeline
from embodied.rl.finetune import AlgoSettings
from embodied.rl.refresh import RefreshSettings

pytestmark = pytest.mark.sim


def _config(tmp_path) -> PipelineConfig:
    return pipeline_config(tmp_path / "run")


def test_pipeline_skips_finished_stages_and_reruns_changed_ones(tmp_path, capsys):
    config = _config(tmp_path)
    # refreshes spend real episodes, and RL in MuJoCo gets as many
    config.finetune.refresh = RefreshSettings(every=1, task="lift", episodes=2, steps=1,
                                              batch_size=2, reward_steps=1)  # fmt: skip
    config.baseline = MujocoBaseline(enabled=True, num_workers=0)
    config.finetune.eval_task, config.finetune.eval_every = "lift", 1  # checks at 0 and 1
    config.finetune.eval_episodes = 1
    config.finetune.reward_guard = 0.0  # an untrained reward model; the guard has its test
    config.finetune.algo = AlgoSettings(group_size=2, starts=1, minibatch_size=8, lr=1e-3,
                                        min_group_rate=-1.0, max_group_rate=2.0,
                                        entropy_coef=0.01)  # fmt: skip  # every update moves
    first = run_pipeline(config)
    stages = ["collect", "train_policy", "train_world_model", "train_reward_model",
              "eval_world_model", "eval_pretrained", "finetune", "eval_finetuned",
              "finetune_mujoco", "eval_finetuned_mujoco", "evaluator", "report"]  # fmt: skip
    assert list(first["wall_s"]) == stages
    run = tmp_path / "run"
    assert (run / "world_model_eval/world_model_eval.json").is_file()
    assert json.loads((run / "eval_pretrained/summary.json").read_text())["episodes"] == 1
    report = json.loads((run / "report.json").read_text())
    lift = report["per_task"]["lift"]  # RL in the world model and in MuJoCo, side by side
    assert set(lift) == {"pretrained", "finetuned", "finetuned_mujoco", "paired",
                         "paired_mujoco", "paired_world_model_vs_mujoco"}  # fmt: skip
    assert lift["paired"]["episodes"] == 1 and lift["paired_mujoco"]["episodes"] == 1
    # one refresh of two episodes (before RL; none after the last iteration): the baseline
    # gets those 2 real episodes, one iteration of a group of 2
    assert report["real_episodes"] == {"rl_in_world_model": 2, "rl_in_mujoco": 2}
    assert "RL in MuJoCo (same real episodes)" in (run / "report.md").read_text()
    # the world model judged each distinct checkpoint, its MuJoCo episodes pooled: the
    # pretrained one (eval_pretrained and the check at iteration 0), RL's last (its check
    # at iteration 1 and eval_finetuned), and RL in MuJoCo's (eval_finetuned_mujoco)
    evaluator = report["evaluator"]
    assert evaluator["points"] == 3 and evaluator["calibration"] is not None
    assert [p["mujoco_episodes"] for p in evaluator["checkpoints"]] == [2, 2, 1]
    assert "evaluator_r" in report and "as an evaluator" in (run / "report.md").read_text()
    imagined = report["world_model"]["policy_imagined"]  # the pretrained policy, as RL sees it
    assert imagined["episodes"] == 4 and imagined["horizon"] == 10
    assert (
        0.0 <= imagined["success_rate"] <= 1.0
        and "imagined in it" in (run / "report.md").read_text()
    )
    assert set(report["wall_s"]) == set(stages[:-1]) and (run / "report.md").is_file()
    judged = report["reward_model"]  # the classifier RL was rewarded by, on real and imagined
    assert judged["real"]["episodes"] == 1 and judged["replayed"]["episodes"] == 1
    assert "Reward model" in (run / "report.md").read_text()
    assert run_pipeline(config)["wall_s"] == {}
    assert capsys.readouterr().out.count("done earlier") == len(stages)
    config.train_world_model.steps = 3
    (run / "finetune/stale").write_text("from the run before")
    third = run_pipeline(config)
    # what reads the world model reruns; the policy and its MuJoCo evaluation are still good
    assert list(third["wall_s"]) == [
        "train_world_model", "eval_world_model", "finetune", "eval_finetuned",
        "finetune_mujoco", "eval_finetuned_mujoco", "evaluator", "report",
    ]  # fmt: skip
    assert not (run / "finetune/stale").exists()  # started afresh, not resumed: same settings
    assert (run / "world_model/checkpoints/0000003").is_dir()
    assert not (run / "world_model/checkpoints/0000002").exists()  # changed config: fresh start


def test_a_stage_whose_input_reran_is_not_reused_after_an_interruption(tmp_path, monkeypatch):
    import embodied.eval_world_model as eval_world_model

    config = _config(tmp_path)
    run_pipeline(config)
    config.train_world_model.seed = 1  # a new world model at the same path: finetune's
    # own config is unchanged, yet its RL in the old model must not be reused

    def interrupted(cfg):
        raise KeyboardInterrupt

    monkeypatch.setattr(eval_world_model, "evaluate_world_model", interrupted)
    with pytest.raises(KeyboardInterrupt):  # the new world model is trained, RL not yet run
        run_pipeline(config)
    monkeypatch.undo()
    stale = tmp_path / "run/finetune/stale"
    stale.write_text("RL in the old world model")
    result = run_pipeline(config)
    assert "train_world_model" not in result["wall_s"] and "finetune" in result["wall_s"]
    assert not stale.exists()  # started afresh, not resumed from the old world model's RL


def test_interrupted_stage_resumes_and_stale_output_is_not_reused(tmp_path, monkeypatch):
    import embodied.train_policy as train_policy

    config = _config(tmp_path)
    config.train_policy.steps, config.train_policy.save_every = 4, 2
    config.train_policy.log_every = 1
    real = train_policy._build

    def crash_after_first_checkpoint(cfg, resume):
        job = real(cfg, resume)
        batch, calls = job.batch, []

        def batch_then_crash(rows):
            calls.append(rows)
            if len(calls) == 3:  # step 3, after the step-2 checkpoint
                raise KeyboardInterrupt
            return batch(rows)

        job.batch = batch_then_crash
        return job

    monkeypatch.setattr(train_policy, "_build", crash_after_first_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(config)
    run = tmp_path / "run"
    assert not (run / "stages/train_policy.json").exists()
    (run / "policy/kept").touch()  # survives only if the stage resumes in place
    monkeypatch.undo()
    result = run_pipeline(config)
    assert "collect" not in result["wall_s"] and "train_policy" in result["wall_s"]
    lines = (run / "policy/metrics.jsonl").read_text().splitlines()
    assert (run / "policy/kept").exists() and [json.loads(x)["step"] for x in lines] == [1, 2, 3, 4]


@pytest.mark.slow
def test_quickstart_config_runs_end_to_end(tmp_path):
    from embodied.cli import main

    assert main(["pipeline", "configs/quickstart.yaml", f"--output_dir={tmp_path}/qs"]) == 0
    report = json.loads((tmp_path / "qs/report.json").read_text())
    assert set(report["per_task"]) == {"lift"}
    assert report["per_task"]["lift"]["paired"]["episodes"] == 30


def test_report_pairs_outcomes_on_the_shared_seeds():
    from embodied.report import paired_outcomes

    def rows(outcomes):
        return [{"task": "lift", "seed": s, "success": ok} for s, ok in outcomes.items()]

    before = rows({1: True, 2: False, 3: False, 4: True})
    after = rows({1: False, 2: True, 3: True, 4: True, 5: True})  # seed 5 only after
    paired = paired_outcomes(before, after, "lift")
    assert paired == {"episodes": 4, "gained": 2, "lost": 1, "p_value": 1.0}
    assert paired_outcomes(before, after, "door")["episodes"] == 0


def test_evaluator_correlations_by_hand():
    from embodied.evaluator import correlations

    figures = correlations([0.1, 0.2, 0.3, 0.5], [0.0, 0.3, 0.2, 0.6])
    assert figures["points"] == 4 and figures["spearman_rho"] == pytest.approx(0.8)
    assert figures["pearson_r"] == pytest.approx(0.9173, abs=1e-4)
    assert correlations([0.5, 0.5, 0.5], [0.1, 0.2, 0.3])["pearson_r"] is None  # no spread


def test_sign_test_by_hand():
    from embodied.report import sign_test

    # 8 gained, 5 lost: 2 * (C(13,0) + ... + C(13,5)) / 2^13 = 2 * 2380 / 8192
    assert sign_test(8, 5) == pytest.approx(2 * 2380 / 8192)
    assert sign_test(5, 8) == sign_test(8, 5)
    assert sign_test(6, 0) == pytest.approx(2 / 64)  # every change went one way
    assert sign_test(0, 0) == 1.0 and sign_test(3, 3) == 1.0


def test_report_means_success_over_the_tasks_evaluated_before_and_after():
    from embodied.report import task_means

    def rate(x):
        return {"success_rate": x}

    per_task = {
        "lift": {
            "pretrained": rate(0.2),
            "finetuned": rate(0.5),
            "paired": {"gained": 4, "lost": 1},
        },
        "stack": {
            "pretrained": rate(0.0),
            "finetuned": rate(0.1),
            "paired": {"gained": 2, "lost": 0},
        },
        "door": {"pretrained": rate(0.9)},  # not evaluated after RL: left out of the mean
    }
    mean = task_means(per_task)
    assert mean["tasks"] == 2 and mean["pretrained"] == pytest.approx(0.1)
    assert mean["finetuned"] == pytest.approx(0.3) and mean["gain_points"] == pytest.approx(20)
    # pooled over lift and stack: 6 gained, 1 lost; 2 * (1 + 7) / 2^7
    assert mean["paired"] == {"gained": 6, "lost": 1, "p_value": pytest.approx(16 / 128)}
    assert task_means({}) is None
