"""Our MuJoCo tasks in LeRobot's own evaluator:

    lerobot-eval --env.discover_packages_path=envs.lerobot_eval --env.type=embodied \\
        --env.task=lift --policy.path=CKPT --eval.n_episodes=50 --seed=100000

Importing this package registers the env config ``embodied`` with LeRobot and one gym id
per task (``embodied/<task>-v0``). Observations are what lerobot-eval reads: ``pixels``
(one uint8 HWC frame per camera, which it names ``observation.images.<camera>``) and
``agent_pos`` (our 8-D state, ``observation.state``); the instruction is the env's
``task_description``; ``info["is_success"]`` is the task's own judge. So LeRobot's policies
(ACT, Diffusion) and ours are judged on our tasks by LeRobot's tool, on `embodied eval`'s
seeds when `--seed=100000`.
"""

from dataclasses import dataclass, field

import gymnasium as gym
from lerobot.configs.types import FeatureType, PolicyFeature
from lerobot.envs.configs import EnvConfig

from envs.lerobot_eval.env import GYM_NAMESPACE, LeRobotTaskEnv, register_tasks
from envs.robosuite_env import ACTION_DIM, STATE_DIM

__all__ = ["EmbodiedEnvConfig", "LeRobotTaskEnv"]


@EnvConfig.register_subclass("embodied")
@dataclass
class EmbodiedEnvConfig(EnvConfig):
    """Attributes:
    task: one of our tasks (envs.tasks.TASKS), e.g. lift.
    fps: control rate (our tasks run at 20 Hz).
    camera_names: our camera names, in observation order.
    image_size: square camera side in pixels.
    instruction: the instruction for every episode (empty: each seed picks one).
    episode_length: steps before truncation (0: the task's horizon).
    """

    task: str | None = "lift"
    fps: int = 20
    camera_names: list[str] = field(default_factory=lambda: ["agentview", "wrist"])
    image_size: int = 64
    instruction: str = ""
    episode_length: int = 0

    def __post_init__(self):
        from lerobot.utils.constants import ACTION, OBS_IMAGES, OBS_STATE

        size = (self.image_size, self.image_size, 3)
        self.features = {ACTION: PolicyFeature(FeatureType.ACTION, (ACTION_DIM,)),
                         "agent_pos": PolicyFeature(FeatureType.STATE, (STATE_DIM,)),
                         **{f"pixels/{c}": PolicyFeature(FeatureType.VISUAL, size)
                            for c in self.camera_names}}  # fmt: skip
        self.features_map = {ACTION: ACTION, "agent_pos": OBS_STATE,
                             **{f"pixels/{c}": f"{OBS_IMAGES}.{c}"
                                for c in self.camera_names}}  # fmt: skip

    @property
    def package_name(self) -> str:
        return "envs.lerobot_eval"

    @property
    def gym_id(self) -> str:
        return f"{GYM_NAMESPACE}/{self.task}-v0"

    @property
    def gym_kwargs(self) -> dict:
        return {
            "cameras": list(self.camera_names),
            "image_size": self.image_size,
            "instruction": self.instruction,
            "horizon": self.episode_length or None,
        }


register_tasks(gym.register)
