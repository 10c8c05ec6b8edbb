"""Fidelity metrics of imagined frames and success estimates (torch and numpy only)."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def psnr(prediction: Tensor, target: Tensor) -> Tensor:
    """Peak signal-to-noise ratio in dB per image: (N, 3, H, W) in [0, 1] -> (N,)."""
    mse = (prediction - target).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return -10.0 * torch.log10(mse)


def ssim(prediction: Tensor, target: Tensor, window: int = 7, sigma: float = 1.5) -> Tensor:
    """Structural similarity per image (Wang et al. 2004, Gaussian window, per channel then
    averaged): (N, 3, H, W) in [0, 1] -> (N,)."""
    c1, c2 = 0.01**2, 0.03**2
    x = torch.arange(window, dtype=prediction.dtype) - (window - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = (g / g.sum()).to(prediction.device)
    kernel = (g[:, None] * g[None, :]).expand(prediction.shape[1], 1, window, window)

    def blur(img: Tensor) -> Tensor:
        return F.conv2d(img, kernel, groups=img.shape[1])

    mu_x, mu_y = blur(prediction), blur(target)
    var_x = blur(prediction * prediction) - mu_x**2
    var_y = blur(target * target) - mu_y**2
    cov = blur(prediction * target) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return (num / den).flatten(1).mean(1)


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (the Mann-Whitney statistic, ties counted half); NaN when
    only one class is present."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)
    positives, negatives = scores[labels], scores[~labels]
    if len(positives) == 0 or len(negatives) == 0:
        return float("nan")
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([positives, negatives]))  # ties get their mean rank
    n_pos, n_neg = len(positives), len(negatives)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def calibration(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> dict:
    """Reliability table and expected calibration error of predicted probabilities."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    which = np.minimum((probs * bins).astype(int), bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        inside = which == b
        if not inside.any():
            continue
        confidence, frequency = probs[inside].mean(), labels[inside].mean()
        table.append({"bin": b, "count": int(inside.sum()), "mean_prob": confidence,
                      "frequency": frequency})  # fmt: skip
        ece += inside.mean() * abs(confidence - frequency)
    return {"ece": float(ece), "bins": table}
