"""`embodied eval`: a policy closed-loop in the MuJoCo tasks (see `embodied.mujoco_eval`).

Writes `summary.json` (success rate with a Wilson 95 % interval, per task, and for tasks
with several instructions how often the goal of the given text was reached),
`episodes.jsonl` (seed, instruction, outcome, goals reached: enough to replay any episode
with `env.reset(seed=..., options={"task": ...})`) and mp4 videos of the first episodes.
"""

from dataclasses import dataclass, field
from pathlib import Path

from embodied.mujoco_eval import EnvSettings, EvalSettings, evaluate_policy
from embodied.ray_utils import RaySettings
from embodied.refs import PolicyRef
from embodied.types import UserInputError


@dataclass
class EvalConfig:
    """Attributes:
    policy: --policy.path=CKPT.
    env: which tasks.
    eval: how many episodes, from which seed, how many videos.
    output_dir: where summary.json, episodes.jsonl and videos/ go.
    ray: --ray.num_workers=N Ray actors share the episode batches (0 or 1: in this
        process); --ray.address=HOST:PORT uses an existing cluster.
    """

    policy: PolicyRef = field(default_factory=PolicyRef)
    env: EnvSettings = field(default_factory=EnvSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)
    output_dir: str = ""
    ray: RaySettings = field(default_factory=RaySettings)


def evaluate(config: EvalConfig) -> dict:
    if not config.output_dir:
        raise UserInputError("eval needs --output_dir=DIR")
    summary = evaluate_policy(
        config.policy.path, config.env, config.eval, Path(config.output_dir), config.ray
    )
    _print_table(summary)
    return summary


def _print_table(summary: dict) -> None:
    print(f"\n{'task':<16} {'success':>8} {'95% CI':>16} {'episodes':>9}")
    for task, s in summary["per_task"].items():
        ci = f"[{s['ci_low']:.0%}, {s['ci_high']:.0%}]"
        print(f"{task:<16} {s['success_rate']:>8.0%} {ci:>16} {s['episodes']:>9}")
        for name, rate in s.get("instruction_following", {}).items():
            ci = f"[{rate['ci_low']:.0%}, {rate['ci_high']:.0%}]"
            print(f"  {name:<14} {rate['success_rate']:>8.0%} {ci:>16} {rate['episodes']:>9}")
