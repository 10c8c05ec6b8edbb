"""The RL algorithms, by `--algo.type`: what each adds to the shared clipped surrogate.

An algorithm turns a batch of decisions (`embodied.rl.learner.flatten_decisions`) into
per-decision advantages and a keep mask, and may add a loss of its own per minibatch. Only
PPO owns parameters (its value head), so only PPO builds, optimizes and saves one.
"""

from pathlib import Path
from typing import Any

import numpy as np
import torch

from embodied.rl.losses import gae, group_advantages

VALUE_HEAD_FILE = "value_head.safetensors"


class GRPO:
    """Group-relative advantages of each episode's success (World-Gymnast, WMPO); groups
    whose success rate is outside (min_group_rate, max_group_rate) are dropped."""

    def __init__(self, settings: Any, policy: Any):
        self.settings = settings

    def parameter_groups(self) -> list[dict]:
        return []

    def advantages(self, data: dict, features: Any) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.settings
        adv, keep = group_advantages(
            data["returns"], data["groups"], s.min_group_rate, s.max_group_rate
        )
        episode = torch.from_numpy(data["episode"])
        return adv[episode], keep[episode]

    def extra_loss(self, features: torch.Tensor, idx: np.ndarray) -> tuple[Any, dict]:
        return None, {}

    def save(self, state: Path) -> None:
        pass

    def load(self, state: Path) -> None:
        pass


class PPO(GRPO):
    """GAE over each episode's decisions with a value head on the policy's pooled features;
    the head is fitted to the returns alongside the policy."""

    def __init__(self, settings: Any, policy: Any):
        super().__init__(settings, policy)
        device = next(policy.parameters()).device
        self.value_head = torch.nn.Linear(policy.config.dim, 1).to(device)
        self.targets: torch.Tensor | None = None

    def parameter_groups(self) -> list[dict]:
        return [{"params": list(self.value_head.parameters()), "lr": self.settings.value_lr}]

    def advantages(self, data: dict, features: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """`features(idx)`: the policy's pooled features of decisions `idx`."""
        s = self.settings
        episode = torch.from_numpy(data["episode"])
        with torch.no_grad():
            chunks = np.array_split(np.arange(len(episode)), max(1, len(episode) // 256))
            values = torch.cat([self.value_head(features(i)).squeeze(-1).cpu() for i in chunks])
        n_eps, T = int(episode.max()) + 1, int(data["t"].max()) + 1
        grid = {name: torch.zeros(T, n_eps) for name in ("reward", "value", "alive")}
        t = torch.from_numpy(data["t"])
        grid["reward"][t, episode] = torch.from_numpy(data["reward"])
        grid["value"][t, episode] = values
        grid["alive"][t, episode] = 1.0
        adv, returns = gae(grid["reward"], grid["value"], grid["alive"] > 0, s.gamma, s.gae_lambda)
        adv, self.targets = adv[t, episode], returns[t, episode]
        adv = (adv - adv.mean()) / (adv.std() + 1e-6)
        return adv, torch.ones_like(adv, dtype=torch.bool)

    def extra_loss(self, features: torch.Tensor, idx: np.ndarray) -> tuple[Any, dict]:
        targets = self.targets[idx].to(features.device)
        value_loss = (self.value_head(features).squeeze(-1) - targets).pow(2).mean()
        return self.settings.value_coef * value_loss, {"value_loss": value_loss.item()}

    def save(self, state: Path) -> None:
        from safetensors.torch import save_file

        save_file(self.value_head.state_dict(), state / VALUE_HEAD_FILE)

    def load(self, state: Path) -> None:
        from safetensors.torch import load_file

        self.value_head.load_state_dict(load_file(state / VALUE_HEAD_FILE))


ALGORITHMS: dict[str, type[GRPO]] = {"grpo": GRPO, "ppo": PPO}
