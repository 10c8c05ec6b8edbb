"""When RL must stop updating the policy: evidence that what it learns from no longer
matches MuJoCo. Each guard reads finetune's `metrics.jsonl` rows and returns why it fires,
or None.

Two ways RL in a world model goes wrong, and a guard for each:
- the reward model misjudges the policy's real episodes (`reward_disagreement`, at each
  refresh, on real frames);
- the policy learns what the world model gets wrong: imagined success climbs while MuJoCo's
  does not (`imagination_gap`, at each MuJoCo check). On the quickstart without refreshes,
  imagined success went 34 % -> 95 % over 30 iterations while MuJoCo's fell 47 % -> 27 % on
  the 30 evaluation seeds: what the policy learned there was the model's errors.
"""

from typing import Any

import numpy as np


def stop_reason(rows: list[dict], config: Any) -> tuple[str | None, int | None]:
    """After the last of finetune's `rows`: why RL stops (None: it goes on), and the
    iteration whose checked policy it goes back to (None: it keeps the one it has).

    Both guards are read at every row. When both fire at once (quickstart seed 1 at
    iteration 15: the reward model at chance on the refresh's episodes, imagined success
    66 % against MuJoCo's 30 %), RL still goes back: stopping on the reward guard alone
    kept the exploited policy, 47 % -> 27 % on the evaluation seeds."""
    row = rows[-1]
    why = reward_disagreement(row, config.reward_guard)
    gap = None  # checked even when the reward guard fired: only the gap guard goes back
    if "mujoco_success" in row and config.env == "world_model":
        gap = imagination_gap(rows, config.gap_guard)
    if gap is None:
        return why, None
    return "; ".join(x for x in (why, gap[0]) if x), gap[1]


def reward_disagreement(row: dict, bound: float) -> str | None:
    """Fires when the reward model judged a refresh's real episodes with a balanced accuracy
    below `bound` (0: never)."""
    accuracy = row.get("reward_balanced_accuracy")
    if accuracy is None or not accuracy >= 0 or accuracy >= bound:
        return None
    return (f"the reward model judged the policy's real episodes with balanced accuracy "
            f"{accuracy:.2f} < reward_guard {bound}")  # fmt: skip


def imagination_gap(rows: list[dict], bound: float) -> tuple[str, int] | None:
    """Fires at a MuJoCo check (the last row) when imagined success has outgrown MuJoCo's by
    more than `bound` since the first check: (why, the iteration whose policy RL goes back
    to: of the checks before, the one MuJoCo scored best, the earliest on a tie).

    Why the earliest on a tie: a check of 10 episodes cannot tell a policy that RL has begun
    to bend to the model's errors from the one it started with. With models refitted on 192
    of the policy's own episodes (`benchmarks/policy_refit`), the checks at iterations 0 and
    15 both scored 60 %, the guard fired at 30, and the policy of iteration 15 it went back
    to succeeded 33 % on the 30 evaluation seeds against the pretrained policy's 47 %.

    The gap at a check is the mean imagined success of the iterations since the check
    before, less the check's MuJoCo success; at the first check it is the first iteration's
    imagined success less the check's. Imagined and real success need not agree (the reward
    model judges imagined frames on its own scale); a gap that grows means the policy gains
    only in imagination.
    """
    checks = [i for i, r in enumerate(rows) if "mujoco_success" in r]
    if len(checks) < 2 or checks[-1] != len(rows) - 1:
        return None
    first = _imagined(rows[checks[0] + 1 : checks[1] + 1][:1])
    now = _imagined(rows[checks[-2] + 1 : checks[-1] + 1])
    if first is None or now is None:
        return None
    start = first - rows[checks[0]]["mujoco_success"]
    gap = now - rows[checks[-1]]["mujoco_success"]
    if gap - start <= bound:
        return None
    best = max(checks[:-1], key=lambda i: (rows[i]["mujoco_success"], -i))
    back = rows[best]["iteration"]
    why = (f"imagined success outgrew MuJoCo's by {gap - start:+.2f} since the first check "
           f"(> gap_guard {bound}): back to the policy of iteration {back}")  # fmt: skip
    return why, back


def _imagined(rows: list[dict]) -> float | None:
    values = [r["wm_success"] for r in rows if "wm_success" in r]
    return float(np.mean(values)) if values else None
