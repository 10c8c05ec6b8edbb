"""`embodied pipeline CONFIG`: every stage of the job, in order, skipping finished ones.

Stages: collect expert data -> train the policy -> train the world model -> measure the
world model -> evaluate the policy in MuJoCo -> RL in the world model -> evaluate the
fine-tuned policy on the same seeds -> report. Each stage is its command's own config
nested under its name (`--train_policy.steps=500`); the pipeline fills in the paths, all
under the run directory:

    data/  policy/  world_model/  world_model_eval/  eval_pretrained/  finetune/
    eval_finetuned/  report.md  report.json  plots/  stages/<name>.json

`stages/<name>.json` records the config a stage finished with, `<name>.started.json` the
one it started with. A stage is skipped when its record matches; otherwise it runs. A
stage that runs erases the records of every stage that reads its output (`Stage.inputs`,
directly or not), so those run again too. A new world-model setting thus reruns the world
model, RL and what follows, but not the MuJoCo evaluation of the unchanged pretrained
policy (16 minutes on the CPU benchmark). A stage interrupted with an unchanged config
resumes from its own checkpoints; one that must start over has its old output removed
first, so a stale model is never resumed.
"""

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, is_dataclass, replace
from pathlib import Path

from embodied.config import to_dict
from embodied.data.record import CollectConfig
from embodied.data.source import DatasetConfig
from embodied.eval_world_model import EvalWorldModelConfig
from embodied.evaluate import EvalConfig
from embodied.refs import PolicyRef, WorldModelRef
from embodied.rl.finetune import FinetuneConfig
from embodied.train_policy import TrainPolicyConfig
from embodied.train_world_model import TrainWorldModelConfig


@dataclass
class PipelineConfig:
    """Attributes:
    output_dir: the run directory; every artifact of every stage goes under it.
    collect: the expert-data stage (`embodied collect` settings; root is set for you).
    train_policy: `embodied train-policy` settings (dataset and output_dir are set for you).
    train_world_model: `embodied train-world-model` settings (same).
    eval_world_model: `embodied eval-world-model` settings (same).
    eval: `embodied eval` settings for the pretrained and the fine-tuned policy.
    finetune: `embodied finetune` settings (policy, world model, dataset and output set).
    """

    output_dir: str = "runs/quickstart"
    collect: CollectConfig = field(default_factory=CollectConfig)
    train_policy: TrainPolicyConfig = field(default_factory=TrainPolicyConfig)
    train_world_model: TrainWorldModelConfig = field(default_factory=TrainWorldModelConfig)
    eval_world_model: EvalWorldModelConfig = field(default_factory=EvalWorldModelConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)


@dataclass
class Stage:
    """A command run on its config; `resumable` stages continue from their checkpoints.
    `inputs` names the earlier stages whose outputs it reads."""

    name: str
    config: object
    output: Path
    run: Callable[[object], object]
    inputs: tuple[str, ...] = ()
    resumable: bool = False


def _stages(config: PipelineConfig) -> list[Stage]:
    from embodied.data.record import collect
    from embodied.eval_world_model import evaluate_world_model
    from embodied.evaluate import evaluate
    from embodied.report import build_report
    from embodied.rl.finetune import finetune
    from embodied.train_policy import train_policy
    from embodied.train_world_model import train_world_model

    out = Path(config.output_dir)
    data = DatasetConfig(root=str(out / "data"))
    final = "checkpoints/{:07d}/pretrained_model"
    policy_path = out / "policy" / final.format(config.train_policy.steps)
    world_model_path = out / "world_model" / final.format(config.train_world_model.steps)
    finetuned_path = out / "finetune" / final.format(config.finetune.iterations)
    dataset = replace(config.train_policy.dataset, root=data.root)
    stages = [
        Stage("collect", replace(config.collect, root=data.root), out / "data", collect),
        Stage(
            "train_policy",
            replace(config.train_policy, dataset=dataset, output_dir=str(out / "policy")),
            out / "policy",
            train_policy,
            inputs=("collect",),
            resumable=True,
        ),
        Stage(
            "train_world_model",
            replace(config.train_world_model, dataset=dataset, output_dir=str(out / "world_model")),
            out / "world_model",
            train_world_model,
            inputs=("collect",),
            resumable=True,
        ),
        Stage(
            "eval_world_model",
            replace(
                config.eval_world_model,
                world_model=WorldModelRef(str(world_model_path)),
                dataset=dataset,
                output_dir=str(out / "world_model_eval"),
                policy=PolicyRef(str(policy_path)),  # imagined as RL will imagine it
                policy_horizon=config.finetune.horizon,
                policy_temperature=config.finetune.algo.temperature,
            ),
            out / "world_model_eval",
            evaluate_world_model,
            inputs=("collect", "train_policy", "train_world_model"),
        ),
        Stage(
            "eval_pretrained",
            replace(
                config.eval,
                policy=PolicyRef(str(policy_path)),
                output_dir=str(out / "eval_pretrained"),
            ),
            out / "eval_pretrained",
            evaluate,
            inputs=("train_policy",),
        ),
        Stage(
            "finetune",
            replace(
                config.finetune,
                policy=PolicyRef(str(policy_path)),
                world_model=WorldModelRef(str(world_model_path)),
                dataset=dataset,
                output_dir=str(out / "finetune"),
            ),
            out / "finetune",
            finetune,
            inputs=("collect", "train_policy", "train_world_model"),
            resumable=True,
        ),
        Stage(
            "eval_finetuned",
            replace(
                config.eval,
                policy=PolicyRef(str(finetuned_path)),
                output_dir=str(out / "eval_finetuned"),
            ),
            out / "eval_finetuned",
            evaluate,
            inputs=("finetune",),
        ),
    ]
    # the report reads every stage's results and wall time
    inputs = tuple(s.name for s in stages)
    return [*stages, Stage("report", str(out), out / "report.md", build_report, inputs)]


def _as_json(config: object) -> object:
    plain = to_dict(config) if is_dataclass(config) else config
    return json.loads(json.dumps(plain))  # tuples come back from JSON as lists


def _write(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(content, indent=2))
    tmp.replace(path)


def _read_config(path: Path) -> dict | None:
    return json.loads(path.read_text())["config"] if path.is_file() else None


def run_pipeline(config: PipelineConfig) -> dict:
    """Run (or skip) every stage; returns the wall time of the stages that ran and their
    results."""
    out = Path(config.output_dir)
    stages = _stages(config)
    wall: dict[str, float] = {}
    results: dict[str, object] = {}
    for i, stage in enumerate(stages):
        settings = _as_json(stage.config)
        done, started = _records(out, stage.name)
        if _read_config(done) == settings and stage.output.exists():
            print(f"{stage.name}: done earlier, reusing {stage.output}")
            continue
        # what reads this stage's output is stale from now on, even if this run stops
        # before reaching it: forget its records, so no run skips or resumes it
        for later in _dependents(stage.name, stages[i + 1 :]):
            for record in _records(out, later):
                record.unlink(missing_ok=True)
        done.unlink(missing_ok=True)
        # resume only a stage interrupted with these settings (and inputs, see above)
        if not (stage.resumable and _read_config(started) == settings):
            shutil.rmtree(stage.output, ignore_errors=True)  # never resume a stale run
            _write(started, {"config": settings})
        print(f"== {stage.name} ==")
        start = time.perf_counter()
        results[stage.name] = stage.run(stage.config)
        wall[stage.name] = time.perf_counter() - start
        _write(done, {"config": settings, "wall_s": wall[stage.name]})
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
