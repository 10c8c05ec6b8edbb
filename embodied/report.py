"""The run report: success before and after RL, learning curves, world-model fidelity.

Built only from the artifacts of a pipeline run directory (never from Python objects), so
it can be regenerated at any time: `report.md` (with PNG plots beside it) and `report.json`
(`per_task` -> `pretrained` / `finetuned` success with Wilson intervals, and `paired`: on
the seeds both evaluations ran, how many episodes RL turned into successes (`gained`) and
into failures (`lost`), and the exact sign test's `p_value` of that split; `mean`: success
averaged over the tasks, the figure benchmarks such as WMPO's quote, with the paired counts
pooled over the tasks; `wall_s` per stage).
"""

import json
from math import comb
from pathlib import Path

SUMMARY_KEYS = ("success_rate", "ci_low", "ci_high", "episodes")


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _read_rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.is_file() else []


def paired_outcomes(before: list[dict], after: list[dict], task: str) -> dict:
    """Episode by episode on the seeds both evaluations share: with 30 episodes the two
    intervals overlap even for a real gain, while the paired counts show which way it went."""
    first = {r["seed"]: r["success"] for r in before if r["task"] == task}
    second = {r["seed"]: r["success"] for r in after if r["task"] == task}
    seeds = sorted(set(first) & set(second))
    gained = sum(second[s] and not first[s] for s in seeds)
    lost = sum(first[s] and not second[s] for s in seeds)
    return {"episodes": len(seeds), "gained": gained, "lost": lost,
            "p_value": sign_test(gained, lost)}  # fmt: skip


def sign_test(gained: int, lost: int) -> float:
    """Two-sided exact sign test (McNemar's) on the discordant seeds: the chance of a split
    at least this uneven if RL changed nothing. Only the seeds whose outcome changed count."""
    n, k = gained + lost, min(gained, lost)
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2**n)


# the policies each report compares, by the evaluation folder that judged them
EVALUATIONS = {"pretrained": "eval_pretrained", "finetuned": "eval_finetuned",
               "finetuned_mujoco": "eval_finetuned_mujoco"}  # fmt: skip
# paired comparisons: name -> (before, after)
COMPARISONS = {"paired": ("pretrained", "finetuned"),
               "paired_mujoco": ("pretrained", "finetuned_mujoco"),
               "paired_world_model_vs_mujoco": ("finetuned_mujoco", "finetuned")}  # fmt: skip


def task_means(per_task: dict) -> dict | None:
    """Success rate averaged over the tasks evaluated both before and after RL (each task
    counts once, whatever its episode count), the gain in points, and each comparison's
    paired counts pooled over those tasks (`paired`, and `paired_mujoco`,
    `paired_world_model_vs_mujoco` when RL also ran in MuJoCo)."""
    both = [s for s in per_task.values() if "pretrained" in s and "finetuned" in s]
    if not both:
        return None
    means = {"tasks": len(both)}
    for name in EVALUATIONS:
        if all(name in s for s in both):
            means[name] = sum(s[name]["success_rate"] for s in both) / len(both)
    means["gain_points"] = 100 * (means["finetuned"] - means["pretrained"])
    if "finetuned_mujoco" in means:
        means["mujoco_gain_points"] = 100 * (means["finetuned_mujoco"] - means["pretrained"])
    for name in COMPARISONS:
        if any(name in s for s in both):
            gained = sum(s[name]["gained"] for s in both if name in s)
            lost = sum(s[name]["lost"] for s in both if name in s)
            means[name] = {"gained": gained, "lost": lost, "p_value": sign_test(gained, lost)}
    return means


def compare_policies(run: Path) -> dict:
    """Per task: each evaluated policy's success, and the paired counts of each comparison
    whose two evaluations share seeds."""
    summaries = {n: _read_json(run / d / "summary.json") or {"per_task": {}}
                 for n, d in EVALUATIONS.items()}  # fmt: skip
    rows = {n: _read_rows(run / d / "episodes.jsonl") for n, d in EVALUATIONS.items()}
    per_task = {}
    for task in sorted({t for s in summaries.values() for t in s["per_task"]}):
        per_task[task] = {
            name: {k: source["per_task"][task][k] for k in SUMMARY_KEYS}
            for name, source in summaries.items()
            if task in source["per_task"]
        }
        for name, (first, second) in COMPARISONS.items():
            paired = paired_outcomes(rows[first], rows[second], task)
            if paired["episodes"]:
                per_task[task][name] = paired
    return per_task


def _max_of(rows: list[dict], key: str) -> int:
    return max([r.get(key) or 0 for r in rows], default=0)


def build_report(run_dir: str | Path) -> dict:
    """Write report.md, report.json and plots/ into `run_dir`; return the JSON."""
    run = Path(run_dir)
    per_task = compare_policies(run)
    wall = {
        path.stem: json.loads(path.read_text()).get("wall_s")
        for path in sorted((run / "stages").glob("*.json"))
        if not path.stem.endswith(".started")
    }
    world_model = _read_json(run / "world_model_eval/world_model_eval.json") or {}
    curves = _read_rows(run / "finetune/metrics.jsonl")
    mujoco_curve = _read_rows(run / "finetune_mujoco/metrics.jsonl")
    evaluator = _read_json(run / "evaluator/evaluator.json")
    report = {
        "per_task": per_task,
        "mean": task_means(per_task),
        "wall_s": wall,
        "total_wall_s": sum(v for v in wall.values() if v),
        "world_model": {
            k: world_model.get(k)
            for k in (
                "psnr_gain_db_h10",
                "success_auroc",
                "shuffled_action_penalty",
                "psnr_h10",
                "psnr_copy_h10",
                "ssim_h10",
                "ssim_copy_h10",
                "state_error_h10",
                "episode_success",
                "frame_stride",
                "policy_imagined",
            )
        },  # fmt: skip
        "reward_model": world_model.get("reward_model"),
        "evaluator": evaluator,
        "evaluator_r": (evaluator or {}).get("pearson_r"),
        "stopped": next((r["stopped"] for r in curves if r.get("stopped")), None),
        # real MuJoCo episodes each method learned from (the world model's data aside)
        "real_episodes": {
            "rl_in_world_model": _max_of(curves, "real_episodes"),
            **(
                {"rl_in_mujoco": _max_of(mujoco_curve, "real_episodes")}
                if (run / "finetune_mujoco").is_dir()
                else {}
            ),  # fmt: skip
        },
        "rl_curve": [
            {k: r.get(k) for k in ("iteration", "wm_success", "mujoco_success", "refresh_success")}
            for r in curves
        ],
    }
    plots = _plots(run, report, world_model)
    (run / "report.json").write_text(json.dumps(report, indent=2))
    (run / "report.md").write_text(_markdown(run, report, plots))
    return report


def _plots(run: Path, report: dict, world_model: dict) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = run / "plots"
    out.mkdir(exist_ok=True)
    made = []
    drawings = [
        ("rl_curve", _draw_rl_curve, report["rl_curve"]),
        ("world_model_psnr", _draw_psnr, world_model if world_model.get("curves") else None),
        ("success", _draw_success, report["per_task"]),
    ]
    for name, draw, data in drawings:
        if not data:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.5))
        draw(ax, data)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / f"{name}.png", dpi=100)
        plt.close(fig)
        made.append(f"plots/{name}.png")
    return made


def _draw_rl_curve(ax, curve: list[dict]) -> None:
    wm = [(r["iteration"], r["wm_success"]) for r in curve if r["wm_success"] is not None]
    mj = [(r["iteration"], r["mujoco_success"]) for r in curve if r["mujoco_success"] is not None]
    refresh = [(r["iteration"], r["refresh_success"]) for r in curve
               if r.get("refresh_success") is not None]  # fmt: skip
    if wm:
        ax.plot(*zip(*wm, strict=True), label="imagined success (as RL was rewarded)")
    if mj:
        ax.plot(*zip(*mj, strict=True), "o-", label="MuJoCo (true success)")
    if refresh:
        ax.plot(*zip(*refresh, strict=True), "s--", label="MuJoCo, sampling (refresh episodes)")
    ax.set(xlabel="RL iteration", ylabel="success rate", ylim=(0, 1), title="RL in the world model")


def _draw_psnr(ax, world_model: dict) -> None:
    c = world_model["curves"]
    steps = range(1, len(c["psnr"]) + 1)
    ax.plot(steps, c["psnr"], label="world model")
    ax.plot(steps, c["psnr_copy"], "--", label="copy last frame")
    stride = world_model.get("frame_stride", 1)
    ax.set(xlabel=f"model steps ahead (open loop; {stride} env steps each)", ylabel="PSNR (dB)",
           title="Imagined frames, held-out episodes")  # fmt: skip


def _draw_success(ax, per_task: dict) -> None:
    tasks = list(per_task)
    shown = [n for n in COLUMNS if any(n in s for s in per_task.values())]
    width = 0.8 / len(shown)
    for j, name in enumerate(shown):
        xs, ys, err = [], [], [[], []]
        for i, task in enumerate(tasks):
            s = per_task[task].get(name)
            if s:
                xs.append(i - 0.4 + width * (j + 0.5))
                ys.append(s["success_rate"])
                err[0].append(s["success_rate"] - s["ci_low"])
                err[1].append(s["ci_high"] - s["success_rate"])
        ax.bar(xs, ys, width=width, yerr=err, capsize=4, label=COLUMNS[name])
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set(ylabel="MuJoCo success (95% CI)", ylim=(0, 1), title="Before and after RL")


def _fmt(s: dict | None) -> str:
    if not s:
        return "—"
    return f"{s['success_rate']:.0%} [{s['ci_low']:.0%}, {s['ci_high']:.0%}] (n={s['episodes']})"


def _markdown(run: Path, report: dict, plots: list[str]) -> str:
    lines = ["# Run report", "", f"Run directory: `{run}`", "",
             "## MuJoCo success before and after RL", ""]  # fmt: skip
    lines += _success_lines(report)
    lines.append("")
    lines += _world_model_lines(report["world_model"])
    lines += _reward_model_lines(report.get("reward_model"), report.get("stopped"))
    lines += _evaluator_lines(report.get("evaluator"))
    if report["rl_curve"]:
        real = report.get("real_episodes", {}).get("rl_in_world_model", 0)
        last = report["rl_curve"][-1]
        imagined = last["wm_success"]  # none when RL stopped before its first iteration
        imagined = "—" if imagined is None else f"{imagined:.0%}"
        lines += [
            "## RL in the world model",
            "",
            f"Iterations: {last['iteration']}; last imagined success {imagined}. "
            "MuJoCo checks are logged next to the world model's estimate: a gap that grows "
            f"means the policy exploits the model. Real MuJoCo episodes RL learned from: {real}.",
            "",
        ]
    if "rl_in_mujoco" in report["real_episodes"]:
        lines += ["## RL in MuJoCo (the baseline)", "",
                  f"The same algorithm run directly in MuJoCo on "
                  f"{report['real_episodes']['rl_in_mujoco']} real episodes (the budget RL in "
                  "the world model spent), evaluated on the same seeds.", ""]  # fmt: skip
    for plot in plots:
        lines.append(f"![{Path(plot).stem}]({plot})")
    videos = sorted(str(p.relative_to(run)) for p in run.glob("*/videos/*.mp4"))
    if videos:
        lines += ["", "## Videos", ""] + [f"- [{v}]({v})" for v in videos]
    lines += ["", "## Wall time per stage (s)", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in report["wall_s"].items() if v is not None]
    return "\n".join(lines) + "\n"


COLUMNS = {"pretrained": "pretrained", "finetuned": "RL in the world model",
           "finetuned_mujoco": "RL in MuJoCo (same real episodes)"}  # fmt: skip
SENTENCES = {"paired": "RL in the world model turned {gained} of the pretrained policy's "
                       "failures into successes and {lost} successes into failures",
             "paired_mujoco": "RL in MuJoCo turned {gained} failures into successes and "
                              "{lost} successes into failures",
             "paired_world_model_vs_mujoco": "RL in the world model succeeded on {gained} "
                                             "seeds where RL in MuJoCo failed, and failed on "
                                             "{lost} where it succeeded"}  # fmt: skip


def _success_lines(report: dict) -> list[str]:
    shown = [n for n in COLUMNS if any(n in s for s in report["per_task"].values())]
    lines = ["| task | " + " | ".join(COLUMNS[n] for n in shown) + " |",
             "|---|" + "---|" * len(shown)]  # fmt: skip
    for task, s in report["per_task"].items():
        lines.append(f"| {task} | " + " | ".join(_fmt(s.get(n)) for n in shown) + " |")
    mean = report["mean"]
    if mean and mean["tasks"] > 1:
        cells = [f"{mean[n]:.1%}" if n in mean else "—" for n in shown]
        lines.append(f"| mean of {mean['tasks']} tasks | " + " | ".join(cells) + " |")
        lines.append(f"\nMean gain of RL in the world model: {mean['gain_points']:+.1f} points"
                     + (f"; of RL in MuJoCo: {mean['mujoco_gain_points']:+.1f} points."
                        if "mujoco_gain_points" in mean else "."))  # fmt: skip
    lines += ["", "Success rate with its Wilson 95 % interval, on the same evaluation seeds.", ""]
    for task, s in report["per_task"].items():
        for name, sentence in SENTENCES.items():
            if name in s:
                p = s[name]
                lines.append(f"- {task}, {p['episodes']} seeds: {sentence.format(**p)} "
                             f"(sign test p = {p['p_value']:.2g}).")  # fmt: skip
    if mean and mean["tasks"] > 1:
        for name, sentence in SENTENCES.items():
            if name in mean:
                p = mean[name]
                lines.append(f"- all {mean['tasks']} tasks: {sentence.format(**p)} "
                             f"(sign test p = {p['p_value']:.2g}).")  # fmt: skip
    return lines


def _reward_model_lines(reward: dict | None, stopped: str | None) -> list[str]:
    """The reward RL was given: how it judges real episodes, and the same episodes imagined."""
    if not reward:
        return []
    lines = [
        "## Reward model (success classifier on real frames)", "",
        f"Threshold {reward['threshold']:.3f}, chosen on held-out real episodes.", "",
        "| judged episodes | precision | recall | episodes (successes) |", "|---|---|---|---|",
    ]  # fmt: skip
    for name, label in (("real", "held-out, real frames"), ("replayed", "same, imagined")):
        j = reward.get(name) or {}
        p, r = (f"{j[k]:.2f}" if j.get(k) is not None else "—" for k in ("precision", "recall"))
        lines.append(f"| {label} | {p} | {r} | {j.get('episodes')} ({j.get('successes')}) |")
    if stopped:
        lines += ["", f"RL stopped early: {stopped}."]
    return [*lines, ""]


def _evaluator_lines(evaluator: dict | None) -> list[str]:
    """Imagined against MuJoCo success of every checkpoint the run made."""
    if not evaluator:
        return []
    r, rho = evaluator.get("pearson_r"), evaluator.get("spearman_rho")
    lines = ["## The world model as an evaluator", "",
             f"Each checkpoint imagined {evaluator['episodes']} times (temperature "
             f"{evaluator['temperature']}) and judged by the reward model, against MuJoCo. "
             f"Pearson r = {'—' if r is None else f'{r:.2f}'}, Spearman rho = "
             f"{'—' if rho is None else f'{rho:.2f}'} over {evaluator['points']} checkpoints.",
             "", "| checkpoint | imagined | MuJoCo (episodes) |", "|---|---|---|"]  # fmt: skip
    for p in evaluator["checkpoints"]:
        name = "/".join(Path(p["policy"]).parts[-4:-1])
        lines.append(f"| {name} | {p['imagined_success']:.0%} | {p['mujoco_success']:.0%} "
                     f"({p['mujoco_episodes']}) |")  # fmt: skip
    c = evaluator.get("calibration")
    if c:
        lines += ["", f"Calibration: the pretrained policy imagined {c['imagined']:.0%}, "
                      f"MuJoCo {c['mujoco']:.0%} ({c['gap_points']:+.0f} points)."]  # fmt: skip
    return [*lines, ""]


def _world_model_lines(wm: dict) -> list[str]:
    lines = []
    if wm.get("psnr_h10") is not None:
        lines += ["## World model (held-out episodes)", "", "| figure | value |", "|---|---|"]
        psnr = f"{wm['psnr_h10']:.2f} dB ({wm['psnr_copy_h10']:.2f} dB)"
        ahead = f"10 steps ahead ({10 * wm.get('frame_stride', 1)} env steps)"
        lines.append(f"| PSNR {ahead} (copy-last) | {psnr} |")
        lines.append(f"| PSNR gain over copy-last | {wm['psnr_gain_db_h10']:.2f} dB |")
        ssim = f"{wm['ssim_h10']:.3f} ({wm['ssim_copy_h10']:.3f})"
        lines.append(f"| SSIM {ahead} (copy-last) | {ssim} |")
        if wm.get("success_auroc") is not None:
            lines.append(f"| success-head AUROC | {wm['success_auroc']:.3f} |")
        lines.append(f"| shuffled-action error ratio | {wm['shuffled_action_penalty']:.2f} |")
        judged = wm.get("episode_success") or {}
        for name in ("recall", "false_positive_rate"):
            if judged.get(name) is not None:
                label = f"whole episodes replayed: success {name.replace('_', ' ')}"
                lines.append(f"| {label} | {judged[name]:.2f} |")
        imagined = wm.get("policy_imagined")
        if imagined:
            rate = f"{imagined['success_rate']:.0%} of {imagined['episodes']}"
            lines.append(f"| pretrained policy imagined in it: success | {rate} |")
            for text, value in imagined["by_instruction"].items():
                lines.append(f"| &nbsp;&nbsp;{text} | {value:.0%} |")
        lines.append("")
    return lines
