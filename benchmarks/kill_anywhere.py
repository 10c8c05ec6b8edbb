"""Kill `embodied pipeline` anywhere, rerun it, and check it ends where an undisturbed run ends.

1. The reference: `embodied pipeline configs/tiny.yaml` run once, undisturbed, in its own
   folder, timing each stage from its `== stage ==` line.
2. The killed run, in a fresh folder: for every stage, `--kills` times, the pipeline is
   started (it skips finished stages and resumes the interrupted one), and once the stage's
   `== stage ==` line appears its whole process group gets SIGKILL after a moment drawn
   uniformly within that stage's reference duration. A kill that comes after the process
   ended is not counted. Then it runs to the end, undisturbed.
3. The comparison, where the stages are deterministic:
   - the report is complete: every stage's record, report.json and report.md;
   - the collected data equal (every numeric column of every row);
   - every trained model's final weights equal: policy, world model, reward model, RL's;
   - each trainer's metrics.jsonl lists every step once, with the reference's losses;
   - the evaluations' outcomes equal, seed by seed, and the report's success rates;
   - nothing half-written is left (`*.tmp*`, `*.partial`).

Run: .venv/bin/python -m benchmarks.kill_anywhere --kills=2 --json=kill_anywhere.json
"""

import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import BenchmarkConfig, parse, print_table, write_json
from embodied.config import ConfigError

REPO = Path(__file__).resolve().parents[1]
STAGE_LINE = "== "  # `== <stage> ==`, printed by the pipeline as a stage starts
TRAINERS = ("policy", "world_model", "reward_model", "finetune")
EVALUATIONS = ("eval_pretrained", "eval_finetuned")


@dataclass
class KillAnywhereConfig(BenchmarkConfig):
    """Attributes (besides the shared ones in BenchmarkConfig; repeats is unused):
    config: the pipeline config to run (tiny, so the harness takes minutes).
    kills: SIGKILLs aimed at each stage.
    stages: the stages to aim at, comma-separated (empty: every stage).
    seed: draws the moments.
    workdir: where the two runs go (empty: a temporary folder, removed afterwards).
    """

    config: str = str(REPO / "configs/tiny.yaml")
    kills: int = 2
    stages: str = ""
    seed: int = 0
    workdir: str = ""


class Pipeline:
    """`embodied pipeline` in its own process group, its output lines read as they come."""

    def __init__(self, config: str, out: Path, log):
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "embodied.cli", "pipeline", config, f"--output_dir={out}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
            start_new_session=True, cwd=REPO,
        )  # fmt: skip
        self.lines: queue.Queue = queue.Queue()
        self.log = log
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.log.write(line)
            self.lines.put((time.perf_counter(), line.strip()))
        self.lines.put((time.perf_counter(), None))

    def next_stage(self) -> tuple[float, str | None]:
        """(when, name) of the next stage to start; name None once the process ended."""
        while True:
            when, line = self.lines.get()
            if line is None:
                return when, None
            if line.startswith(STAGE_LINE) and line.endswith(" =="):
                return when, line[len(STAGE_LINE) : -3]

    def kill(self) -> bool:
        """SIGKILL the process group; False when the process had already ended."""
        if self.proc.poll() is not None:
            return False
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        return True

    def finish(self) -> int:
        code = self.proc.wait()
        while self.next_stage()[1] is not None:
            pass
        return code


def reference_run(config: str, out: Path, log) -> dict[str, float]:
    """Run undisturbed; each stage's duration, from its start line to the next one's."""
    run = Pipeline(config, out, log)
    starts: list[tuple[float, str | None]] = []
    while True:
        starts.append(run.next_stage())
        if starts[-1][1] is None:
            break
    if run.proc.wait() != 0:
        raise RuntimeError(f"the reference run failed; see {log.name}")
    return {name: starts[i + 1][0] - when for i, (when, name) in enumerate(starts[:-1])}


def killed_run(config: str, out: Path, durations: dict, args: KillAnywhereConfig, log) -> dict:
    """Kill each stage `args.kills` times at random moments, then finish; kills by stage."""
    rng = random.Random(args.seed)
    aimed = [s for s in args.stages.split(",") if s] or list(durations)
    kills: dict[str, int] = {}
    for stage in aimed:
        for _ in range(args.kills):
            run = Pipeline(config, out, log)
            while (started := run.next_stage())[1] not in (stage, None):
                pass
            if started[1] is None:  # the stage finished earlier: it cannot be hit now
                run.finish()
                break
            time.sleep(rng.uniform(0, durations[stage]))
            if run.kill():
                kills[stage] = kills.get(stage, 0) + 1
                log.write(f"--- killed in {stage} ---\n")
            else:
                break
    if Pipeline(config, out, log).finish() != 0:
        raise RuntimeError(f"the run after the kills failed; see {log.name}")
    return kills


def compare(reference: Path, killed: Path) -> dict[str, bool]:
    """Each check of the module docstring: passed or not."""
    checks = {"report complete": _complete(reference, killed)}
    checks["collected data equal"] = _same_data(reference / "data", killed / "data")
    for name in TRAINERS:
        checks[f"{name} weights equal"] = _same_weights(reference / name, killed / name)
        checks[f"{name} metrics each step once"] = _same_metrics(reference / name, killed / name)
    for name in EVALUATIONS:
        checks[f"{name} outcomes equal"] = _outcomes(reference / name) == _outcomes(killed / name)
    checks["report success equal"] = _success(reference) == _success(killed)
    leftovers = [p for p in killed.rglob("*") if ".tmp" in p.name or p.name.endswith(".partial")]
    checks["nothing half-written left"] = not leftovers
    return checks


def _complete(reference: Path, killed: Path) -> bool:
    records = sorted(p.name for p in (reference / "stages").glob("*.json"))
    return (
        records == sorted(p.name for p in (killed / "stages").glob("*.json"))
        and (killed / "report.md").is_file()
        and set(json.loads((reference / "report.json").read_text()))
        == set(json.loads((killed / "report.json").read_text()))
    )


def _same_data(a: Path, b: Path) -> bool:
    import pyarrow.parquet as pq

    files = sorted(p.relative_to(a) for p in (a / "data").rglob("*.parquet"))
    if files != sorted(p.relative_to(b) for p in (b / "data").rglob("*.parquet")):
        return False
    for rel in files:
        x, y = pq.read_table(a / rel), pq.read_table(b / rel)
        if x.column_names != y.column_names or not x.equals(y):
            return False
    return True


def _final_weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    pointer = json.loads((folder / "checkpoints/last.json").read_text())
    return load_file(folder / "checkpoints" / pointer["dir"] / "pretrained_model/model.safetensors")


def _same_weights(a: Path, b: Path) -> bool:
    import torch

    x, y = _final_weights(a), _final_weights(b)
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def _same_metrics(a: Path, b: Path) -> bool:
    """The same steps (or iterations), each once, with the same losses."""

    def rows(folder: Path) -> list[tuple]:
        lines = (folder / "metrics.jsonl").read_text().splitlines()
        parsed = [json.loads(x) for x in lines]
        return [(r.get("step", r.get("iteration")), r.get("loss")) for r in parsed]

    return rows(a) == rows(b)


def _outcomes(folder: Path) -> list[tuple]:
    rows = [json.loads(x) for x in (folder / "episodes.jsonl").read_text().splitlines()]
    return sorted((r["task"], r["seed"], bool(r["success"])) for r in rows)


def _success(run: Path) -> dict:
    report = json.loads((run / "report.json").read_text())
    return {task: {k: v.get("success_rate") for k, v in figures.items() if isinstance(v, dict)}
            for task, figures in report["per_task"].items()}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    try:
        args = parse(KillAnywhereConfig, __doc__, argv)
    except ConfigError as err:
        sys.exit(f"kill_anywhere: {err}")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="kill_anywhere-"))
    work.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(work / "reference", ignore_errors=True)
    shutil.rmtree(work / "killed", ignore_errors=True)
    start = time.perf_counter()
    with open(work / "pipeline.log", "w") as log:
        durations = reference_run(args.config, work / "reference", log)
        kills = killed_run(args.config, work / "killed", durations, args, log)
    checks = compare(work / "reference", work / "killed")
    survived = all(checks.values())
    rows = [[s, f"{durations[s]:.1f}", kills.get(s, 0), kills.get(s, 0) if survived else 0]
            for s in durations]  # fmt: skip
    print_table(["stage", "reference s", "kills", "survived"], rows)
    print_table(["check", "passed"], [[k, v] for k, v in checks.items()])
    figures = {
        "kills": kills,
        "kills_injected": sum(kills.values()),
        "kills_survived": sum(kills.values()) if survived else 0,
        "checks": checks,
        "stage_seconds": durations,
        "wall_s": time.perf_counter() - start,
    }
    write_json(args.json, figures)
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return figures


if __name__ == "__main__":
    main()
