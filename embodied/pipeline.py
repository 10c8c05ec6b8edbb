"""`embodied pipeline CONFIG`: every stage of the job, in order, skipping finished ones.

Stages: collect expert data -> train the policy -> train the world model -> train the
reward model (on real frames) -> measure the world model and the reward model -> evaluate
the policy in MuJoCo -> RL in the world model -> evaluate the fine-tuned policy on the same
seeds -> (with `--baseline.enabled`: RL directly in MuJoCo on the real episodes RL in the
world model spent, and its evaluation on the same seeds) -> report. Each stage is its
command's own config nested under its name (`--train_policy.steps=500`); the pipeline fills
in the paths, all under the run directory:

    data/  policy/  world_model/  reward_model/  world_model_eval/  eval_pretrained/  finetune/
    eval_finetuned/  finetune_mujoco/  eval_finetuned_mujoco/  report.md  report.json  plots/
    stages/<name>.json

`stages/<name>.json` records the config a stage finished with and the path it returned
(a later stage's config is built from those paths, never from a guessed layout),
`<name>.started.json` the one it started with. A stage is skipped when its record matches;
otherwise it runs. A
stage that runs erases the records of every stage that reads its output (`Stage.inputs`,
directly or not), so those run again too. A new world-model setting thus reruns the world
model, RL and what follows, but not the MuJoCo evaluation of the unchanged pretrained
policy (16 minutes on the CPU benchmark). A stage interrupted with an unchanged config
resumes from its own checkpoints; one that must start over has its old output removed
first, so a stale model is never resumed.
"""

import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, is_dataclass, replace
from pathlib import Path

from embodied.config import to_dict
from embodied.data.record import CollectConfig
from embodied.data.source import DatasetConfig
from embodied.eval_world_model import EvalWorldModelConfig
from embodied.evaluate import EvalConfig
from embodied.evaluator import EvaluatorConfig
from embodied.files import read_json, write_text_atomically
from embodied.refs import PolicyRef, RewardModelRef, WorldModelRef
from embodied.rl.finetune import FinetuneConfig
from embodied.train_policy import TrainPolicyConfig
from embodied.train_reward_model import TrainRewardModelConfig
from embodied.train_world_model import TrainWorldModelConfig
from embodied.types import UserInputError


@dataclass
class MujocoBaseline:
    """RL directly in MuJoCo (`finetune --env=mujoco`): finetune's algorithm and settings,
    on exactly as many real episodes as RL in the world model learned from (its refreshes'),
    so the report can say whether the world model bought anything (WMPO's comparison).

    Attributes:
        enabled: run it, and evaluate it on the evaluation's seeds.
        starts: start states per worker per iteration (each run algo.group_size times): the
            budget buys budget // (num_workers x starts x group_size) iterations.
        num_workers: its rollout actors (0: in the pipeline's process).
    """

    enabled: bool = False
    starts: int = 1
    num_workers: int = 1


@dataclass
class PipelineConfig:
    """Attributes:
    output_dir: the run directory; every artifact of every stage goes under it.
    collect: the expert-data stage (`embodied collect` settings; root is set for you).
    train_policy: `embodied train-policy` settings (dataset and output_dir are set for you).
    train_world_model: `embodied train-world-model` settings (same).
    train_reward_model: `embodied train-reward-model` settings (same; its clips take the
        world model's frame_stride, so it can judge every imagined model step).
    eval_world_model: `embodied eval-world-model` settings (same).
    eval: `embodied eval` settings for the pretrained and the fine-tuned policy.
    finetune: `embodied finetune` settings (policy, world model, dataset and output set).
    baseline: RL in MuJoCo at the same real-episode budget, for the report's comparison.
    evaluator: the world model as an evaluator of every checkpoint the run made
        (`embodied.evaluator`; models, data, horizon, task and paths are set for you).
    """

    output_dir: str = "runs/quickstart"
    collect: CollectConfig = field(default_factory=CollectConfig)
    train_policy: TrainPolicyConfig = field(default_factory=TrainPolicyConfig)
    train_world_model: TrainWorldModelConfig = field(default_factory=TrainWorldModelConfig)
    train_reward_model: TrainRewardModelConfig = field(default_factory=TrainRewardModelConfig)
    eval_world_model: EvalWorldModelConfig = field(default_factory=EvalWorldModelConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    baseline: MujocoBaseline = field(default_factory=MujocoBaseline)
    evaluator: EvaluatorConfig = field(default_factory=EvaluatorConfig)


@dataclass
class Stage:
    """A command run on a config built from the results of earlier stages (`make(results)`:
    the paths they returned, by stage name); `resumable` stages continue from their
    checkpoints. `inputs` names the earlier stages whose outputs it reads."""

    name: str
    make: Callable[[dict], object]
    output: Path
    run: Callable[[object], object]
    inputs: tuple[str, ...] = ()
    resumable: bool = False


def _stages(config: PipelineConfig) -> list[Stage]:
    from embodied.data.record import collect
    from embodied.eval_world_model import evaluate_world_model
    from embodied.evaluate import evaluate
    from embodied.rl.finetune import finetune
    from embodied.train_policy import train_policy
    from embodied.train_reward_model import train_reward_model
    from embodied.train_world_model import train_world_model

    out = Path(config.output_dir)
    stride = config.train_world_model.world_model.frame_stride
    reward = replace(config.train_reward_model.reward_model, frame_stride=stride)
    judged_by = ("collect", "train_policy", "train_world_model", "train_reward_model")

    def data(results: dict) -> DatasetConfig:
        return replace(config.train_policy.dataset, root=results["collect"])

    def trained(section, name: str):
        return lambda r: replace(section, dataset=data(r), output_dir=str(out / name))

    def evaluated(policy_stage: str, name: str):
        return lambda r: replace(config.eval, policy=PolicyRef(r[policy_stage]),
                                 output_dir=str(out / name))  # fmt: skip

    stages = [
        Stage("collect", lambda r: replace(config.collect, root=str(out / "data")),
              out / "data", collect),
        Stage("train_policy", trained(config.train_policy, "policy"), out / "policy",
              train_policy, ("collect",), resumable=True),
        Stage("train_world_model", trained(config.train_world_model, "world_model"),
              out / "world_model", train_world_model, ("collect",), resumable=True),
        Stage("train_reward_model",
              lambda r: replace(trained(config.train_reward_model, "reward_model")(r),
                                reward_model=reward),
              out / "reward_model", train_reward_model, ("collect",), resumable=True),
        Stage("eval_world_model", lambda r: _eval_world_model(config, r, data(r)),
              out / "world_model_eval", evaluate_world_model, judged_by),
        Stage("eval_pretrained", evaluated("train_policy", "eval_pretrained"),
              out / "eval_pretrained", evaluate, ("train_policy",)),
        Stage("finetune", lambda r: replace(
                  config.finetune, policy=PolicyRef(r["train_policy"]),
                  world_model=WorldModelRef(r["train_world_model"]), dataset=data(r),
                  reward_model=RewardModelRef(r["train_reward_model"]),
                  output_dir=str(out / "finetune")),
              out / "finetune", finetune, judged_by, resumable=True),
        Stage("eval_finetuned", evaluated("finetune", "eval_finetuned"),
              out / "eval_finetuned", evaluate, ("finetune",)),
    ]  # fmt: skip
    if config.baseline.enabled:
        stages += [
            Stage("finetune_mujoco", lambda r: _mujoco_baseline(config, r, data(r)),
                  out / "finetune_mujoco", finetune, ("collect", "train_policy", "finetune"),
                  resumable=True),
            Stage("eval_finetuned_mujoco", evaluated("finetune_mujoco", "eval_finetuned_mujoco"),
                  out / "eval_finetuned_mujoco", evaluate, ("finetune_mujoco",)),
        ]  # fmt: skip
    return _judged(config, stages, data)


def _judged(config: PipelineConfig, stages: list[Stage], data) -> list[Stage]:
    """The stages, then the evaluator, which judges every checkpoint they made, and the
    report, which reads every stage's results and wall time."""
    from embodied.evaluator import judge_checkpoints
    from embodied.report import build_report

    out = Path(config.output_dir)
    inputs = tuple(s.name for s in stages)
    stages.append(Stage("evaluator", lambda r: _evaluator(config, r, data(r)),
                        out / "evaluator", judge_checkpoints, inputs))  # fmt: skip
    inputs = tuple(s.name for s in stages)
    return [*stages, Stage("report", lambda r: str(out), out / "report.md", build_report, inputs)]


def _eval_world_model(config: PipelineConfig, results: dict, data: DatasetConfig):
    """The world model measured on held-out episodes, and the pretrained policy imagined in
    it as RL will imagine it (finetune's horizon and temperature)."""
    return replace(
        config.eval_world_model,
        world_model=WorldModelRef(results["train_world_model"]),
        dataset=data,
        output_dir=str(Path(config.output_dir) / "world_model_eval"),
        policy=PolicyRef(results["train_policy"]),
        reward_model=RewardModelRef(results["train_reward_model"]),
        policy_horizon=config.finetune.horizon,
        policy_temperature=config.finetune.algo.temperature,
    )


def _evaluator(config: PipelineConfig, results: dict, data: DatasetConfig):
    """The run's world model and reward model judging its checkpoints, over finetune's
    horizon, with the MuJoCo checks' task and episodes for checkpoints not yet evaluated."""
    out, ft = Path(config.output_dir), config.finetune
    return replace(
        config.evaluator, run_dir=str(out), dataset=data, horizon=ft.horizon,
        world_model=WorldModelRef(results["train_world_model"]),
        reward_model=RewardModelRef(results["train_reward_model"]),
        eval_task=ft.eval_task or config.eval.env.task, eval_episodes=ft.eval_episodes,
        output_dir=str(out / "evaluator"),
    )  # fmt: skip


def _mujoco_baseline(config: PipelineConfig, results: dict, data: DatasetConfig):
    """finetune's config, run in MuJoCo on the real-episode budget RL in the world model
    spent (the last `real_episodes` of its metrics) and as many iterations as it buys."""
    from embodied.rl.budget import mujoco_episodes_per_iteration
    from embodied.rl.refresh import RefreshSettings

    out = Path(config.output_dir)
    rows = (out / "finetune" / "metrics.jsonl").read_text().splitlines()
    budget = max([json.loads(r).get("real_episodes") or 0 for r in rows], default=0)
    base, ft = config.baseline, config.finetune
    mujoco = replace(
        ft, env="mujoco", task=ft.task or ft.refresh.task or ft.eval_task, eval_task="",
        policy=PolicyRef(results["train_policy"]), world_model=WorldModelRef(),
        reward_model=RewardModelRef(), dataset=data, refresh=RefreshSettings(),
        algo=replace(ft.algo, starts=base.starts), real_episodes=budget,
        ray=replace(ft.ray, num_workers=base.num_workers),
        output_dir=str(out / "finetune_mujoco"),
    )  # fmt: skip
    return replace(mujoco, iterations=budget // mujoco_episodes_per_iteration(mujoco))


def _as_json(config: object) -> object:
    plain = to_dict(config) if is_dataclass(config) else config
    return json.loads(json.dumps(plain))  # tuples come back from JSON as lists


def _write(path: Path, content: dict) -> None:
    write_text_atomically(path, json.dumps(content, indent=2))


def _read_record(path: Path) -> dict:
    """A stage record, or {} when there is none. A corrupt one is not trusted: it is said
    and removed, so its stage runs again from scratch."""
    if not path.is_file():
        return {}
    try:
        record = read_json(path)
        if not isinstance(record.get("config"), dict | str):  # a stage's config, or a path
            raise UserInputError(f"{path} is corrupt (its config is {record.get('config')!r})")
        if not isinstance(record.get("result"), str | None):
            raise UserInputError(f"{path} is corrupt (its result is {record['result']!r})")
    except UserInputError as err:
        print(f"{err}; its stage runs again", file=sys.stderr)
        path.unlink()
        return {}
    return record


def run_pipeline(config: PipelineConfig) -> dict:
    """Run (or skip) every stage; returns the wall time of the stages that ran and every
    stage's result (the path it wrote, for those that return one)."""
    out = Path(config.output_dir)
    stages = _stages(config)
    wall: dict[str, float] = {}
    results: dict[str, object] = {}
    for i, stage in enumerate(stages):
        stage_config = stage.make(results)
        settings = _as_json(stage_config)
        done, started = _records(out, stage.name)
        record = _read_record(done)
        if record.get("config") == settings and "result" in record and stage.output.exists():
            print(f"{stage.name}: done earlier, reusing {stage.output}")
            results[stage.name] = record["result"]
            continue
        # what reads this stage's output is stale from now on, even if this run stops
        # before reaching it: forget its records, so no run skips or resumes it
        for later in _dependents(stage.name, stages[i + 1 :]):
            for path in _records(out, later):
                path.unlink(missing_ok=True)
        done.unlink(missing_ok=True)
        # resume only a stage interrupted with these settings (and inputs, see above)
        if not (stage.resumable and _read_record(started).get("config") == settings):
            shutil.rmtree(stage.output, ignore_errors=True)  # never resume a stale run
            _write(started, {"config": settings})
        print(f"== {stage.name} ==")
        start = time.perf_counter()
        result = stage.run(stage_config)
        wall[stage.name] = time.perf_counter() - start
        results[stage.name] = str(result) if isinstance(result, str | Path) else None
        _write(done, {"config": settings, "wall_s": wall[stage.name],
                      "result": results[stage.name]})  # fmt: skip
    return {"wall_s": wall, "results": results}


def _records(out: Path, name: str) -> tuple[Path, Path]:
    """A stage's record of its finished config, and of the config it started with."""
    return out / "stages" / f"{name}.json", out / "stages" / f"{name}.started.json"


def _dependents(name: str, later: list[Stage]) -> list[str]:
    """The stages among `later` (in order) that read `name`'s output, directly or not."""
    stale = {name}
    for stage in later:
        if stale.intersection(stage.inputs):
            stale.add(stage.name)
    return sorted(stale - {name})
