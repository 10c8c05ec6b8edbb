"""Whether imagination ranks a GRPO group as MuJoCo does: the figure RL in the world model
lives on.

GRPO learns only from the ranking of the G episodes of a group (one start state, G sampled
chunk sequences). So this benchmark plays the same groups in both worlds:

- MuJoCo: `--starts` seeds, each G times. Until `--fork_at` env steps every copy acts with
  the policy's mean chunk (so the G copies of a seed stay in one state: the physics is
  deterministic); from there each samples chunks at RL's temperature.
- The world model: G copies of that real state (its last K observations, state and
  instruction), the same policy sampling with the same noise (one generator seeded alike,
  drawing the same (B, chunk, A) noise per decision), judged by the reward model.

The first sampled chunk of copy i is then the same in both worlds; after it each world
shows the policy its own frames. Figures:
- success in MuJoCo and imagined (at the reward model's threshold);
- within-group AUROC: over the pairs (success, failure) of one MuJoCo group, how often the
  imagined score ranks the success higher (0.5: GRPO's advantages are noise); and the same
  with MuJoCo's own actions replayed open-loop in the world model (no policy reacting to
  imagined frames): where this one is high and the closed-loop one is not, the policy is
  misled by imagined frames; where both are low, the model does not follow the actions;
- groups with mixed outcomes in each world (GRPO learns only from those).

Measured on the quickstart's models as trained, pretrained policy, 16 groups of 8:
- from the episode start: 0.57 closed loop, 0.86 with MuJoCo's actions replayed;
- forked at step 50: 0.42 closed loop, and imagination says 89 % for a policy at 37 %;
- the world model refitted on 64 of the policy's own episodes: 0.43 closed loop, 0 %
  imagined success;
- both models refitted on 192 of the policy's own episodes (`benchmarks/policy_refit`):
  0.66 closed loop, 0.88 replayed, 0 % imagined success at the reward model's threshold;
- a fresh quickstart run (pretrained 40 % at temperature 0), 16 groups: 0.41 closed loop,
  0.87 replayed at RL's temperature 1 (MuJoCo 32 %, imagined 76 %); at temperature 0.5
  (`--temperature=0.5`) 0.43 and 0.92 (MuJoCo 32 %, imagined 99 %). Sampling nearer the mean
  chunk does not make imagination rank a group better. A world model with twice the
  dynamics width and blocks (128, 4; its training loss as the default's) gave 0.52 and 0.90:
  capacity is not what it lacks. Both models trained on 48 episodes of which 8 were near
  misses (`collect --near_miss_rate=0.25`: the expert grasps beside the cube, the failure the
  policy makes) gave 0.56 and 0.81, imagined success 2 % at the reward model's threshold;
  those two then refitted on 192 of the policy's own episodes (`policy_refit`, 33 % of them
  successful; 26 minutes) gave 0.66 and 0.84, imagined success 0 %: the near misses add
  nothing to the refit alone (0.66). The as-trained models refitted on three times as many
  of the policy's own episodes (576: 192 recorded earlier plus 384, world model 3,000
  steps, reward model 750; 56 minutes) gave 0.60 and 0.88, imagined success 0 %: more of
  the policy's own data does not make imagination rank a group better. Stochastic
  dynamics as DreamerV3's (8 categorical variables of 8 classes drawn per step, posterior
  in training, prior in imagination, free nats 1; commit 4b147e2, reverted) gave 0.36 and
  0.77, imagined success 2 %: its posterior carried 0.06 nats per step, so the draws were
  noise on the condition, not outcomes the data leaves open. A latent grid of 16x16
  instead of 8x8 (`--world_model.channels=[16,32]`, 1,500 steps, its image loss as the
  default's) gave 0.49 and 0.50, imagined success 0 %: finer latents do not make the
  model follow the actions either. Scoring the
  as-trained models' imagined episodes by the imagined robot state instead of the reward
  model (0.41) ranks no better: the arm's highest rise above its lowest point 0.41, the
  finger gap there 0.59, where the same figures from MuJoCo's own states give 0.69 and
  0.80 (its gap inverted: a closed grasp succeeds);
- anchored (chunks sampled from one reference episode, played open loop in both worlds):
  0.25 replayed. So the 0.86 above is no evidence that the model follows the actions:
  closed-loop actions carry their outcome (a policy that has grasped lifts), and the model
  only has to render it; perturbations of one real trajectory, whose outcome the contact
  physics decides, it ranks worse than chance.

Run (after the quickstart):
  .venv/bin/python -m benchmarks.group_agreement --fork_at=0 --json=ga.json
"""

import sys
from dataclasses import dataclass

import numpy as np

from benchmarks.common import BenchmarkConfig, finished_run_finetune, parse, print_table, write_json
from embodied.config import ConfigError

FIRST_SEED = 20_000_000  # away from evaluation's, collect's and RL's MuJoCo seeds


@dataclass
class GroupAgreementConfig(BenchmarkConfig):
    """Attributes (besides the shared ones in BenchmarkConfig):
    run: a finished pipeline run (its finetune config names the models and the policy).
    policy: the policy to play (empty: the run's pretrained policy).
    world_model, reward_model: the models to imagine with (empty: the run's as trained).
    starts: MuJoCo seeds (groups).
    group: episodes per group (G).
    fork_at: env steps played with the mean chunk before sampling starts (a multiple of
        the world model's frame stride): 0 compares from the episode's first frame.
    anchored: the G copies sample their chunks from the observations of one reference
        episode (the policy's mean chunks in MuJoCo) instead of their own, so that their
        actions are open loop in both worlds (the replayed figures are then the ones to
        read): whether the world model can rank perturbations of a real trajectory.
    temperature: the sampling temperature in both worlds (negative: the run's RL
        temperature).
    """

    run: str = "runs/quickstart"
    policy: str = ""
    world_model: str = ""
    reward_model: str = ""
    starts: int = 8
    group: int = 8
    fork_at: int = 0
    anchored: bool = False
    temperature: float = -1.0


class ForkedSampler:
    """The mean chunk for the first `fork` decisions, then the sampler's chunks; keeps the
    observations of each decision (the context the world model starts from)."""

    def __init__(self, sampler, fork: int):
        self.sampler, self.fork, self.calls, self.seen = sampler, fork, 0, []

    def __call__(self, obs: dict):
        self.seen.append(obs)
        temperature = self.sampler.temperature
        if self.calls < self.fork:
            self.sampler.temperature = 0.0
        try:
            return self.sampler(obs)
        finally:
            self.sampler.temperature, self.calls = temperature, self.calls + 1


class Anchored:
    """The sampler acting on the observations of a reference episode, decision by decision,
    whatever the env shows."""

    def __init__(self, sampler, reference: list[dict]):
        self.sampler, self.reference, self.calls, self.seen = sampler, reference, 0, []

    def __call__(self, obs: dict):
        self.seen.append(obs)
        self.calls += 1
        return self.sampler(self.reference[min(self.calls, len(self.reference)) - 1])


def within_group_auroc(scores: np.ndarray, labels: np.ndarray, groups: np.ndarray):
    """P(imagined score of a MuJoCo success > that of a failure of the same group), ties
    half, over every such pair; None when no group is mixed."""
    wins, pairs = 0.0, 0
    for g in np.unique(groups):
        mine = groups == g
        pos, neg = scores[mine & labels], scores[mine & ~labels]
        wins += ((pos[:, None] > neg) + 0.5 * (pos[:, None] == neg)).sum()
        pairs += len(pos) * len(neg)
    return float(wins / pairs) if pairs else None


def mixed(labels: np.ndarray, groups: np.ndarray) -> float:
    rates = np.array([labels[groups == g].mean() for g in np.unique(groups)])
    return float(((rates > 0) & (rates < 1)).mean())


def play_mujoco(policy, finetune: dict, args, n_steps: int, first: int):
    """The groups in MuJoCo: (success per episode, the observations of every decision, the
    rollout, the task's horizon)."""
    import torch

    from embodied.acting import ChunkSampler
    from embodied.obs_spec import env_settings
    from embodied.rollouts import rollout
    from envs.batched import BatchedTaskEnv
    from envs.tasks import parse_tasks

    spec = parse_tasks(finetune["eval_task"])[0]
    n = args.starts * args.group
    seeds = [FIRST_SEED + first + i for i in range(args.starts) for _ in range(args.group)]
    texts = [spec.instructions[(first + i) % len(spec.instructions)] for i in range(args.starts)]
    texts = [t for t in texts for _ in range(args.group)]
    env = BatchedTaskEnv([spec.name] * n, n, **env_settings(policy[0].config))
    sampler = ChunkSampler(*policy, n_steps, finetune["algo"]["temperature"],
                           torch.Generator().manual_seed(0))  # fmt: skip
    options = {"seeds": seeds, "tasks": texts}
    actor = ForkedSampler(sampler, args.fork_at // n_steps)
    if args.anchored:
        reference = ForkedSampler(sampler, fork=10**9)  # every copy the mean: one episode
        rollout(env, reference, options=options)
        actor = Anchored(sampler, reference.seen)
    result = rollout(env, actor, options=options)
    env.close()
    return np.asarray(result.info["is_success"], dtype=bool), actor.seen, result, spec.horizon


def start_bank(seen: list[dict], fork: int, context: int, keys: list[str]):
    """The forked state of every episode as a world model's start: the observations of the
    last `context` decisions up to the fork (the first repeated before the episode began)."""
    from embodied.types import STATE, TASK
    from world_models.env import StartBank

    calls = [seen[max(0, fork - context + 1 + i)] for i in range(context)]
    images = {k: np.stack([c[k] for c in calls], axis=1) for k in keys}
    state = np.stack([c[STATE] for c in calls], axis=1).astype(np.float32)
    return StartBank(images=images, state=state, instructions=list(calls[-1][TASK]))


def imagine(world, reward, bank, policy, finetune: dict, args, n_steps: int, horizon: int,
            replayed=None) -> np.ndarray:  # fmt: skip
    """Each copy's best success probability in imagination over the steps MuJoCo had left,
    sampled with the same noise (closed loop), or, given MuJoCo's rollout from the fork on
    (`replayed`), acting its actions and scored over the steps each episode ran there."""
    import torch

    from embodied.acting import ChunkSampler
    from embodied.imagination import ScoresWhileRecorded
    from embodied.rl.calibration import BestScores
    from embodied.rollouts import Replay, rollout
    from world_models.env import WorldModelEnv

    n = args.starts * args.group
    env = WorldModelEnv(world, bank, n, horizon=horizon - args.fork_at,
                        reward_model=reward, reward_threshold=2.0)  # fmt: skip
    if replayed is None:
        actor = ChunkSampler(*policy, n_steps, finetune["algo"]["temperature"],
                             torch.Generator().manual_seed(0))  # fmt: skip
        best = BestScores()
    else:
        actions, lengths = replayed  # (T, B, n, A) chunks -> (B, T * n, A) actions
        actor = Replay(actions.transpose(1, 0, 2, 3).reshape(n, -1, actions.shape[-1]), n_steps)
        best = ScoresWhileRecorded(lengths)
    rollout(env, actor, options={"starts": np.arange(n)}, callbacks=[best])
    return best.best


BLOCK = 8  # groups played at once (64 episodes): 16 at once ran out of 24 GB


def play_block(world, reward, policy, finetune: dict, args, n_steps: int, first: int):
    """`BLOCK` groups from seed `first` on, in both worlds: (MuJoCo success, imagined
    score), each episode's group, for the groups still running at the fork."""
    from dataclasses import replace

    block = replace(args, starts=min(BLOCK, args.starts - first))
    real, seen, result, horizon = play_mujoco(policy, finetune, block, n_steps, first)
    fork = args.fork_at // n_steps
    if fork >= len(seen):
        raise ConfigError(f"every episode ended before fork_at={args.fork_at}")
    ended = result.ended[:fork].any(axis=0) if fork else np.zeros(len(real), dtype=bool)
    bank = start_bank(seen, fork, world.config.context, list(world.config.image_keys))
    scores = imagine(world, reward, bank, policy, finetune, block, n_steps, horizon)
    ran = np.asarray(result.info["steps"]) - args.fork_at  # env steps each ran after the fork
    replayed = imagine(world, reward, bank, policy, finetune, block, n_steps, horizon,
                       (result.actions[fork:], ran))  # fmt: skip
    groups = first + np.repeat(np.arange(block.starts), block.group)
    keep = ~ended  # a group that succeeded before the fork has nothing left to rank
    return real[keep], scores[keep], replayed[keep], groups[keep]


def at_temperature(finetune: dict, temperature: float) -> dict:
    """The run's finetune settings, sampling at `temperature` (negative: at the run's)."""
    if temperature < 0:
        return finetune
    return {**finetune, "algo": {**finetune["algo"], "temperature": temperature}}


def measure(finetune: dict, args) -> dict:
    from embodied.policy_io import load_policy
    from world_models.registry import load_world_model
    from world_models.reward_model import load_reward_model

    policy = load_policy(args.policy or finetune["policy"]["path"], policy_type="embodied_vla")
    policy[0].eval()
    world = load_world_model(args.world_model or finetune["world_model"]["path"])
    reward = load_reward_model(args.reward_model or finetune["reward_model"]["path"])
    n_steps = finetune["n_action_steps"] or policy[0].config.n_action_steps
    if args.anchored and args.fork_at:
        raise ConfigError("anchored copies follow one reference episode from its start")
    if n_steps != world.config.frame_stride or args.fork_at % n_steps:
        raise ConfigError(f"fork_at and the policy's executed steps ({n_steps}) must be "
                          f"multiples of the world model's frame stride")  # fmt: skip
    blocks = [play_block(world, reward, policy, finetune, args, n_steps, first)
              for first in range(0, args.starts, BLOCK)]  # fmt: skip
    real, scores, replayed, groups = (np.concatenate(x) for x in zip(*blocks, strict=True))
    imagined = scores > reward.config.threshold
    some = len(real) > 0
    return {
        "temperature": finetune["algo"]["temperature"],
        "fork_at": args.fork_at,
        "anchored": args.anchored,
        "groups": int(len(np.unique(groups))),
        "mujoco_success": float(real.mean()) if some else None,
        "imagined_success": float(imagined.mean()) if some else None,
        "within_group_auroc": within_group_auroc(scores, real, groups),
        "within_group_auroc_replayed": within_group_auroc(replayed, real, groups),
        "replayed_success": float((replayed > reward.config.threshold).mean()) if some else None,
        "mixed_groups_mujoco": mixed(real, groups) if some else None,
        "mixed_groups_imagined": mixed(imagined, groups) if some else None,
        "outcome_agreement": float((imagined == real).mean()) if some else None,
    }


def main() -> None:
    try:
        args = parse(GroupAgreementConfig, __doc__)
    except ConfigError as err:
        sys.exit(f"group_agreement: {err}")
    finetune = at_temperature(finished_run_finetune(args.run, "group_agreement"), args.temperature)
    try:
        figures = measure(finetune, args)
    except ConfigError as err:
        sys.exit(f"group_agreement: {err}")
    show = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    print_table(list(figures), [[show(v) if isinstance(v, float) or v is None else v
                                 for v in figures.values()]])  # fmt: skip
    write_json(args.json, figures)


if __name__ == "__main__":
    main()
