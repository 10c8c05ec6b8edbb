"""How a policy picks actions for the rollout driver (`embodied.rollouts.rollout`).

An *actor* maps a batch of env observations (uint8 HWC frames, state, instructions, stacked
along B) to the actions sent to the env, `(B, n, A)` in the env's units. There are two:

- `PolicyActor`: any LeRobot policy through its own `select_action`, one action per call.
  The policy keeps its queue (re-planning every `n_action_steps`), its observation history
  (Diffusion) or its temporal ensembling (ACT) as in LeRobot's own evaluation. Evaluation
  and recording use it; the VLA can also sample here (`temperature`).
- `ChunkSampler`: the VLA's chunk sampled at a temperature, the first `n_action_steps`
  executed at once, returning with them the normalized chunk and the log-probability of its
  executed part: the decisions RL learns from.

Both take the observation batch through `policy_batch`, the one converter from env
observations to a LeRobot batch.
"""

from typing import Any

import numpy as np

from embodied.types import STATE, TASK


def policy_batch(obs: dict, image_keys: list[str]) -> dict:
    """Batched env observations -> a LeRobot batch: float CHW images in [0, 1], float state,
    instructions as a list."""
    import torch

    batch = {
        k: torch.from_numpy(np.asarray(obs[k])).permute(0, 3, 1, 2).float() / 255.0
        for k in image_keys
    }
    batch[STATE] = torch.from_numpy(np.asarray(obs[STATE], dtype=np.float32))
    batch[TASK] = list(obs[TASK])
    return batch


def executed_steps(chunk_size: int, n_action_steps: int):
    """(chunk_size,) bool: True for the first `n_action_steps` actions of a chunk, the ones
    executed, whose log-probability a decision's probability is made of."""
    import torch

    mask = torch.zeros(chunk_size, dtype=torch.bool)
    mask[:n_action_steps] = True
    return mask


class PolicyActor:
    """A LeRobot policy acting one step per call through `select_action`.

    Args:
        policy, pre, post: the policy and its processors (`embodied.policy_io.load_policy`).
        instructions: B instructions to give instead of the env's (a wrong one measures
            whether the policy reads the text); None gives the env's.
        temperature, generator: sample the VLA's chunks at this temperature (None: its
            deterministic mean, and the only choice for other policy types).
        chunked: return the policy's next `n_action_steps` actions at once, (B, n, A), the
            actions `select_action` would give one by one (its mean chunk; the VLA only),
            so the env renders only the observation the policy re-plans from.
    """

    def __init__(self, policy, pre, post, instructions=None, temperature=None, generator=None,
                 chunked=False):  # fmt: skip
        self.policy, self.pre, self.post = policy, pre, post
        self.image_keys = sorted(policy.config.image_features)
        self.instructions = instructions
        self.sampling = {}
        if temperature is not None:
            self.sampling = {"temperature": temperature, "generator": generator}
        if chunked and (temperature is not None or policy.config.type != "embodied_vla"):
            raise ValueError("chunked acting is the VLA's deterministic mean chunk only")
        self.chunked = chunked

    def reset(self) -> None:
        self.policy.reset()

    def __call__(self, obs: dict) -> np.ndarray:
        import torch

        if self.instructions is not None:
            obs = {**obs, TASK: list(self.instructions)}
        with torch.no_grad():
            batch = self.pre(policy_batch(obs, self.image_keys))
            if self.chunked:
                chunk = self.policy.predict_action_chunk(batch)
                actions = self.post(chunk[:, : self.policy.config.n_action_steps])
                return actions.clamp(-1.0, 1.0).cpu().numpy()
            action = self.post(self.policy.select_action(batch, **self.sampling))
        return action.clamp(-1.0, 1.0).cpu().numpy()[:, None]


class ChunkSampler:
    """The VLA's action chunks sampled at `temperature`, `n_action_steps` executed per call;
    returns (actions (B, n, A), {"chunk": normalized (B, H, A), "log_prob": (B,)}).
    Temperature 0 acts as evaluation does, with the mean chunk (log-probs are then 0)."""

    def __init__(self, policy, pre, post, n_action_steps: int, temperature: float, generator):
        self.policy, self.pre, self.post = policy, pre, post
        self.n, self.temperature, self.generator = n_action_steps, temperature, generator
        self.image_keys = sorted(policy.config.image_features)
        self.mask = executed_steps(policy.config.chunk_size, n_action_steps)

    def __call__(self, obs: dict) -> tuple[np.ndarray, dict[str, Any]]:
        import torch

        with torch.no_grad():
            dist = self.policy.distribution(self.pre(policy_batch(obs, self.image_keys)))
            if self.temperature == 0:
                chunk, log_prob = dist.mode, torch.zeros(len(dist.mode))
            else:
                chunk = dist.sample(self.temperature, generator=self.generator)
                mask = self.mask.expand(len(chunk), -1)
                log_prob = dist.log_prob(chunk, mask=mask, temperature=self.temperature)
            actions = self.post(chunk[:, : self.n]).clamp(-1.0, 1.0).cpu().numpy()
        return actions, {"chunk": chunk.cpu().numpy(), "log_prob": log_prob.cpu().numpy()}
