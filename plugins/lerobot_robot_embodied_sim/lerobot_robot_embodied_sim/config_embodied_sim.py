"""Settings of the simulated arm (`--robot.type=embodied_sim --robot.task=lift ...`)."""

from dataclasses import dataclass, field

from lerobot.robots.config import RobotConfig


@RobotConfig.register_subclass("embodied_sim")
@dataclass
class EmbodiedSimConfig(RobotConfig):
    """Attributes:
    task: one of our MuJoCo tasks (envs.tasks.TASKS), e.g. lift.
    camera_names: our camera names, in observation order (not `cameras`: LeRobot reads
        that field as real camera configs).
    image_size: square camera side in pixels.
    instruction: the task's instruction to set up (empty: each seed picks one, as `embodied
        eval` does); give the same text as `--dataset.single_task`.
    seed: seed of the first episode; episode k runs seed + k (100000: `embodied eval`'s).
    episode_steps: most actions an episode executes (later ones are ignored until the next
        episode); 0 takes the task's horizon, the length `embodied eval` gives it.
    episode_time_s: lerobot-record's `--dataset.episode_time_s`: lerobot-record ends its
        episodes by the clock and tells robots nothing, so the scene resets with the next
        seed once this long has passed since the episode's first action. 0: an episode ends
        after `episode_steps` actions instead (loops that count steps, e.g. RemoteDriver).
    outcomes_path: a JSONL file to append each finished episode's seed and success to.
    """

    task: str = "lift"
    camera_names: list[str] = field(default_factory=lambda: ["agentview", "wrist"])
    image_size: int = 64
    instruction: str = ""
    seed: int = 100_000
    episode_steps: int = 0
    episode_time_s: float = 0.0
    outcomes_path: str = ""
