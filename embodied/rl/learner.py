"""The RL learner: the policy being trained, its optimizer and algorithm, and the update
from a batch of imagined (or simulated) decisions.

A *decision* is one predicted action chunk, of which the first n actions were executed; its
log-probability is that of those n actions at the sampling temperature (`embodied.acting`).
"""

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embodied.acting import executed_steps, policy_batch
from embodied.rl.algorithms import ALGORITHMS
from embodied.rl.losses import clipped_surrogate, gaussian_kl


def flatten_decisions(batches: list[dict]) -> dict:
    """The live decisions of every worker's batch, with per-episode returns and groups
    (numbered across batches): `obs`, `actions`, `log_prob`, `reward`, `episode`, `t`
    (N,...), `returns` and `groups` (E,)."""
    rows: dict[str, list] = {k: [] for k in ("actions", "log_prob", "reward", "episode", "t")}
    obs: dict[str, list] = {}
    returns, groups, offset, group_offset = [], [], 0, 0
    for batch in batches:
        t_idx, b_idx = np.nonzero(batch["alive"])
        for key in batch:
            if key.startswith("obs/"):
                obs.setdefault(key[4:], []).append(batch[key][t_idx, b_idx])
        for key in ("actions", "log_prob", "reward"):
            rows[key].append(batch[key][t_idx, b_idx])
        rows["episode"].append(b_idx + offset)
        rows["t"].append(t_idx)
        obs.setdefault("task", []).append(batch["task"][b_idx])
        returns.append(batch["success"].astype(np.float32))
        groups.append(batch["group"] + group_offset)
        offset += batch["alive"].shape[1]
        group_offset += int(batch["group"].max()) + 1
    flat = {k: np.concatenate(v) for k, v in rows.items()}
    flat["obs"] = {k: np.concatenate(v) for k, v in obs.items()}
    flat["returns"] = torch.from_numpy(np.concatenate(returns))
    flat["groups"] = torch.from_numpy(np.concatenate(groups))
    return flat


class Learner:
    """The policy, its optimizer (and the algorithm's own parameters), an optional frozen
    reference for a KL penalty, and the minibatch update."""

    def __init__(self, algo: Any, seed: int, policy, pre, post, n_action_steps: int,
                 device: str = "cpu"):  # fmt: skip
        """`policy`, `pre` and `post` already on `device` (`load_policy(path, device)`)."""
        self.algo, self.seed, self.device = algo, seed, device
        self.policy, self.pre, self.post = policy, pre, post
        self.image_keys = sorted(policy.config.image_features)
        self.mask = executed_steps(policy.config.chunk_size, n_action_steps).to(device)
        torch.manual_seed(seed)
        self.algorithm = ALGORITHMS[algo.type](algo, policy)
        groups = [{"params": list(policy.parameters())}, *self.algorithm.parameter_groups()]
        self.optimizer = torch.optim.AdamW(groups, lr=algo.lr, weight_decay=0.0)
        self.reference = None
        if algo.kl_coef > 0:
            self.reference = copy.deepcopy(policy).eval().requires_grad_(False)

    def weights(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self.policy.state_dict().items()}

    def save_policy(self, folder: Path) -> None:
        for part in (self.policy, self.pre, self.post):
            part.save_pretrained(folder)

    def _batch(self, data: dict, idx: np.ndarray) -> dict:
        obs = {k: v[idx] for k, v in data["obs"].items()}
        return self.pre(policy_batch(obs, self.image_keys))

    def _features(self, data: dict, idx: np.ndarray) -> torch.Tensor:
        return self.policy.distribution(self._batch(data, idx), with_features=True)[1]

    def update(self, batches: list[dict], iteration: int) -> dict:
        """`epochs` passes over the kept decisions in shuffled minibatches; the mean of each
        logged figure, and the share of decisions kept."""
        from embodied.training import optimizer_step

        data = flatten_decisions(batches)
        adv, keep = self.algorithm.advantages(data, lambda idx: self._features(data, idx))
        adv = adv.to(self.device)
        rng = np.random.default_rng([self.seed, iteration])
        kept = keep.nonzero().squeeze(-1).numpy()
        totals: dict[str, list[float]] = {}
        self.policy.train()
        for _ in range(self.algo.epochs if len(kept) else 0):
            order = rng.permutation(kept)
            for start in range(0, len(order), self.algo.minibatch_size):
                idx = order[start : start + self.algo.minibatch_size]
                loss, info = self._loss(data, adv, idx)
                where = f"RL iteration {iteration + 1}"
                info["grad_norm"] = optimizer_step(
                    loss, self.optimizer, self.policy.parameters(), 1.0, where=where
                )
                for k, v in info.items():
                    totals.setdefault(k, []).append(v)
        self.policy.eval()
        stats = {k: float(np.mean(v)) for k, v in totals.items()}
        stats["kept_fraction"] = float(len(kept) / max(len(adv), 1))
        return stats

    def _loss(self, data: dict, adv: torch.Tensor, idx: np.ndarray) -> tuple[Any, dict]:
        """The clipped surrogate of one minibatch, with the entropy bonus, the algorithm's
        own loss and the KL penalty."""
        algo, mask = self.algo, self.mask.expand(len(idx), -1)
        batch = self._batch(data, idx)
        dist, features = self.policy.distribution(batch, with_features=True)
        actions = torch.from_numpy(data["actions"][idx]).to(self.device)
        log_prob = dist.log_prob(actions, mask=mask, temperature=algo.temperature)
        old = torch.from_numpy(data["log_prob"][idx]).to(self.device)
        everything = torch.ones(len(idx), dtype=torch.bool, device=self.device)
        loss, info = clipped_surrogate(
            log_prob, old, adv[idx], everything, algo.clip_low, algo.clip_high
        )
        info["policy_loss"] = loss.item()
        extra, extra_info = self.algorithm.extra_loss(features, idx)
        if extra is not None:
            loss = loss + extra
            info.update(extra_info)
        entropy = dist.entropy(mask=mask, temperature=algo.temperature).mean()
        loss = loss - algo.entropy_coef * entropy
        info["entropy"] = entropy.item()
        if self.reference is not None:
            ref, m = self.reference.distribution(batch), self.mask
            kl = gaussian_kl(dist.mean[:, m], dist.log_std[:, m], ref.mean[:, m], ref.log_std[:, m])
            loss = loss + algo.kl_coef * kl.mean()
            info["kl_ref"] = kl.mean().item()
        return loss, info
