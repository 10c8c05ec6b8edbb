"""Settings of `embodied finetune` and the checks that fail before any rollout."""

from dataclasses import dataclass, field
from typing import Any

from embodied.data.source import DatasetConfig
from embodied.ray_utils import RaySettings
from embodied.refs import PolicyRef, RewardModelRef, WorldModelRef
from embodied.rl.refresh import RefreshSettings
from embodied.rl.rollout_worker import RL_ENVS
from embodied.types import UserInputError


@dataclass
class AlgoSettings:
    """Attributes:
    type: grpo or ppo.
    group_size: G, imagined episodes per start state.
    starts: start states per worker per iteration.
    temperature: sampling temperature (scales the policy's standard deviation).
    clip_low, clip_high: asymmetric ratio clipping (1 - low, 1 + high).
    min_group_rate, max_group_rate: GRPO drops groups whose success rate is outside
        (min, max); the defaults drop groups that all succeed or all fail.
    kl_coef: weight of a KL penalty to the pretrained policy (0: none, the recipe's default).
    epochs: passes over each iteration's decisions.
    minibatch_size: decisions per gradient step.
    lr: learning rate of the policy. Small, because Adam moves every weight by about lr per
        step and a chunk's log-probability sums over every executed action dimension: on the
        quickstart policy one step at 3e-5 moved it by 0.7 nats on average, clipped most
        samples and wrecked the policy within one iteration; 1e-6 moves it by 0.02.
    value_lr: learning rate of PPO's value head (a fresh layer, so much larger).
    gamma, gae_lambda, value_coef: PPO's discount, GAE lambda and value-loss weight.
    entropy_coef: weight of an entropy bonus.
    """

    type: str = "grpo"
    group_size: int = 8
    starts: int = 4
    temperature: float = 1.0
    clip_low: float = 0.2
    clip_high: float = 0.28
    min_group_rate: float = 0.0
    max_group_rate: float = 1.0
    kl_coef: float = 0.0
    epochs: int = 2
    minibatch_size: int = 64
    lr: float = 1e-6
    value_lr: float = 1e-3
    gamma: float = 0.99
    gae_lambda: float = 0.95
    value_coef: float = 0.5
    entropy_coef: float = 0.0


@dataclass
class FinetuneConfig:
    """Attributes:
    policy: --policy.path=CKPT, an embodied_vla checkpoint (RL needs its exact log-probs).
    world_model: --world_model.path=CKPT, the dynamics RL imagines in.
    reward_model: --reward_model.path=CKPT, the success classifier trained on real frames
        that judges imagined episodes; empty: the world model's own success head.
    dataset: where the real start frames come from (episode first frames and instructions).
    algo: the RL algorithm and its settings.
    output_dir: run directory: checkpoints/, metrics.jsonl, finetune_config.json.
    iterations: learner updates in total (a resumed run continues up to this number).
    horizon: env steps before an imagined episode is truncated. The tasks' own horizon
        (150 for lift and lang_cubes): the world model judges many successes late, and at 80
        steps the quickstart's policy had no imagined success at all.
    n_action_steps: actions of each chunk executed before re-planning (0: the policy's).
    success_threshold: success probability at which an imagined episode succeeds.
    eval_task: MuJoCo tasks for the periodic check of true success (empty: none).
    eval_every: iterations between MuJoCo checks (and one at the end).
    eval_episodes: episodes per task in each check.
    save_every: iterations between checkpoints (one is always written at the end).
    refresh: world-model refresh on the policy's MuJoCo episodes (off by default).
    keyframe_every: also start imagined groups from every n-th frame (before success) of
        the real episodes, the dataset's and the policy's own recorded by the refreshes
        (WoVR's keyframes); 0: from episode starts only.
    real_episodes: the budget of real (MuJoCo) episodes RL may learn from, i.e. record in
        refreshes (0: no budget); a refresh that would exceed it is skipped. Every row of
        metrics.jsonl says how many were used so far.
    reward_guard: stop updating the policy when the reward model, judging the policy's own
        real episodes of a refresh (on their real frames), reaches a balanced accuracy
        against MuJoCo's labels below this (0.5 is chance): learning from a reward that
        disagrees with the simulator only teaches the policy its errors. 0: never stop.
    gap_guard: at each MuJoCo check, stop updating and go back to the best earlier checked
        policy (the earliest on a tie) when imagined success has outgrown MuJoCo's by more
        than this (a fraction) since the first check (`embodied.rl.guards.imagination_gap`):
        the policy is then learning the world model's errors. 2: never stop.
    env: where RL practises: "world_model" (imagined episodes judged by the reward model)
        or "mujoco" (real episodes judged by the simulator, each counted against
        real_episodes; no world model, reward model or refresh).
    task: the MuJoCo tasks RL practises in with env=mujoco (empty: eval_task).
    seed: seeds start states, sampling and minibatch order.
    ray: --ray.num_workers=N rollout actors (0: roll out in this process);
        --ray.address=HOST:PORT uses an existing cluster.
    """

    policy: PolicyRef = field(default_factory=PolicyRef)
    world_model: WorldModelRef = field(default_factory=WorldModelRef)
    reward_model: RewardModelRef = field(default_factory=RewardModelRef)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    algo: AlgoSettings = field(default_factory=AlgoSettings)
    output_dir: str = ""
    iterations: int = 20
    horizon: int = 150
    n_action_steps: int = 0
    success_threshold: float = 0.5
    eval_task: str = ""
    eval_every: int = 10
    eval_episodes: int = 6
    save_every: int = 5
    refresh: RefreshSettings = field(default_factory=RefreshSettings)
    keyframe_every: int = 0
    real_episodes: int = 0
    reward_guard: float = 0.6
    gap_guard: float = 0.3
    env: str = "world_model"
    task: str = ""
    seed: int = 0
    ray: RaySettings = field(default_factory=lambda: RaySettings(num_workers=2))


def check_compatible(policy_config: Any, world_model_config: Any, reward_model_config=None) -> None:
    """Fail before any rollout when the policy cannot act in the world model."""
    wm_keys = set(world_model_config.image_keys)
    missing = sorted(set(policy_config.image_features) - wm_keys)
    if missing:
        raise UserInputError(
            f"the policy reads cameras {missing} the world model does not predict "
            f"({sorted(wm_keys)})"
        )
    for key, feature in policy_config.image_features.items():
        size = world_model_config.image_size
        if tuple(feature.shape) != (3, size, size):
            raise UserInputError(
                f"the policy takes {key} as {tuple(feature.shape)}; "
                f"the world model predicts (3, {size}, {size})"
            )
    if policy_config.action_feature.shape[0] != world_model_config.action_dim:
        raise UserInputError(
            f"the policy outputs {policy_config.action_feature.shape[0]}-D actions; "
            f"the world model takes {world_model_config.action_dim}-D"
        )
    if policy_config.robot_state_feature.shape[0] != world_model_config.state_dim:
        raise UserInputError("the policy's state size differs from the world model's")
    if not world_model_config.success_head and reward_model_config is None:
        raise UserInputError("the world model has no success head: it cannot reward the policy "
                         "(give a --reward_model.path)")  # fmt: skip
    if reward_model_config is not None:
        from world_models.env import check_reward_model

        check_reward_model(reward_model_config, world_model_config)


def _check_mujoco(config: FinetuneConfig, policy_config: Any) -> None:
    """RL in MuJoCo: tasks that exist, a policy that acts in them, a budget that pays for
    one iteration, and no refresh (there is no world model to refit)."""
    from embodied.config import ConfigError
    from envs.robosuite_env import ACTION_DIM
    from envs.tasks import parse_tasks

    if not (config.task or config.eval_task):
        raise ConfigError("--env=mujoco needs MuJoCo tasks: --task or --eval_task")
    parse_tasks(config.task or config.eval_task)
    if config.refresh.every > 0:
        raise ConfigError("--env=mujoco learns from MuJoCo itself: there is no world model "
                          "to refresh (set --refresh.every=0)")  # fmt: skip
    if policy_config.action_feature.shape[0] != ACTION_DIM:
        raise ConfigError(f"the policy outputs {policy_config.action_feature.shape[0]}-D "
                          f"actions; the MuJoCo tasks take {ACTION_DIM}-D")  # fmt: skip
    from embodied.rl.budget import mujoco_episodes_per_iteration

    per_iteration = mujoco_episodes_per_iteration(config)
    if config.iterations and config.real_episodes and config.real_episodes < per_iteration:
        raise ConfigError(
            f"--real_episodes={config.real_episodes} does not pay for one iteration in MuJoCo "
            f"({per_iteration} episodes: workers x algo.starts x algo.group_size)"
        )


def check_config(config: FinetuneConfig, policy_config: Any, world_model_config: Any,
                 reward_model_config: Any = None) -> int:  # fmt: skip
    """Everything that can be checked before a rollout; returns the actions executed per
    chunk (`n_action_steps`, the policy's own when 0)."""
    from embodied.config import ConfigError
    from embodied.rl.algorithms import ALGORITHMS

    if not config.output_dir:
        raise ConfigError("finetune needs --output_dir=DIR")
    if config.algo.type not in ALGORITHMS:
        raise ConfigError(f"--algo.type must be one of {sorted(ALGORITHMS)}, not "
                          f"{config.algo.type!r}")  # fmt: skip
    if config.env not in RL_ENVS:
        raise ConfigError(f"--env must be one of {list(RL_ENVS)}, not {config.env!r}")
    if config.env == "mujoco":
        _check_mujoco(config, policy_config)
    elif config.refresh.every > 0:
        from envs.tasks import parse_tasks

        if not (config.refresh.task or config.eval_task):
            raise ConfigError("--refresh.every needs MuJoCo tasks: --refresh.task or --eval_task")
        parse_tasks(config.refresh.task or config.eval_task)
    n = config.n_action_steps or policy_config.n_action_steps
    if not 1 <= n <= policy_config.chunk_size:
        raise ConfigError(f"--n_action_steps={n}: the policy predicts {policy_config.chunk_size}")
    if config.env == "mujoco":
        return n
    check_compatible(policy_config, world_model_config, reward_model_config)
    if n % world_model_config.frame_stride:
        raise ConfigError(
            f"the policy executes {n} actions per chunk; the world model steps "
            f"{world_model_config.frame_stride} at a time (frame_stride): use a multiple"
        )
    return n
