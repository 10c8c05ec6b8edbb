"""Small statistics the reports share."""

import math

import numpy as np


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a success rate (95 % by default); sound at 0 % and 100 %."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def success_summary(outcomes: list[bool]) -> dict:
    """`success_rate`, `ci_low`, `ci_high`, `episodes` of a list of episode outcomes."""
    low, high = wilson_interval(sum(outcomes), len(outcomes))
    rate = sum(outcomes) / len(outcomes) if outcomes else 0.0
    return {"success_rate": rate, "ci_low": low, "ci_high": high, "episodes": len(outcomes)}


def rates_by(success: np.ndarray, keys: np.ndarray) -> dict[str, float]:
    """Success rate per distinct key (e.g. per instruction) of episodes' outcomes."""
    return {str(k): float(success[keys == k].mean()) for k in np.unique(keys)}
