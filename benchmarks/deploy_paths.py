"""One checkpoint, three ways to run it, the same seeded episodes: do they agree?

1. `embodied eval` (our evaluator, in-process; one episode at a time here, since a batch of
   episodes changes the last bits of the network's arithmetic and so some trajectories);
2. `lerobot-record --robot.type=embodied_sim --policy.path=...` (LeRobot's own recording
   loop, at the dataset's fps in real time, writing a LeRobot dataset);
3. `embodied serve` in its own process + `RemoteDriver` driving the `embodied_sim` robot
   (the remote-arm path).

Each path runs episodes on seeds `seed .. seed + n - 1` at the task's horizon and judges
success at any step. Reported: success per path and, for each pair, the seeds whose outcome
differs with the sign test (`embodied.report.paired_outcomes`). Equal policies give zero
discordant seeds up to floating-point differences that change a trajectory.
Run: .venv/bin/python -m benchmarks.deploy_paths --policy=CKPT --json=deploy_paths.json
"""

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import BenchmarkConfig, parse, print_table, write_json
from benchmarks.serve_latency import free_port, start_server
from embodied.config import ConfigError

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / ".venv/bin"


@dataclass
class DeployPathsConfig(BenchmarkConfig):
    """Attributes (besides the shared ones in BenchmarkConfig):
    policy: the checkpoint folder (trained on our Lift data, two 64x64 cameras).
    task, instruction: the MuJoCo task and the text given to the policy.
    episodes: seeded episodes per path; seed: the first seed (embodied eval's default).
    fps: lerobot-record's control rate (our data's 20 Hz).
    """

    policy: str = ""
    task: str = "lift"
    instruction: str = "lift the red cube"
    episodes: int = 30
    seed: int = 100_000
    fps: int = 20


def _rows(path: Path, task: str) -> list[dict]:
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return [{"task": task, "seed": r["seed"], "success": bool(r["success"])} for r in rows]


def via_eval(args: DeployPathsConfig, out: Path) -> list[dict]:
    subprocess.run(
        [str(BIN / "embodied"), "eval", f"--policy.path={args.policy}",
         f"--env.task={args.task}", f"--eval.n_episodes={args.episodes}",
         f"--eval.seed={args.seed}", "--eval.videos=0", "--eval.batch_size=1",
         f"--output_dir={out}"],
        check=True, capture_output=True,
    )  # fmt: skip
    return _rows(out / "episodes.jsonl", args.task)


def via_lerobot_record(args: DeployPathsConfig, out: Path, horizon: int) -> list[dict]:
    seconds = horizon / args.fps
    subprocess.run(
        [str(BIN / "lerobot-record"), "--robot.type=embodied_sim", f"--robot.task={args.task}",
         f"--robot.instruction={args.instruction}", f"--robot.seed={args.seed}",
         f"--robot.episode_steps={horizon}", f"--robot.episode_time_s={seconds}",
         f"--robot.outcomes_path={out / 'outcomes.jsonl'}", f"--policy.path={args.policy}",
         "--policy.device=cpu", "--dataset.repo_id=local/eval_deploy_paths",
         f"--dataset.root={out / 'data'}", f"--dataset.single_task={args.instruction}",
         f"--dataset.fps={args.fps}", f"--dataset.episode_time_s={seconds}",
         "--dataset.reset_time_s=0", f"--dataset.num_episodes={args.episodes}",
         "--dataset.push_to_hub=false", "--play_sounds=false"],
        check=True, capture_output=True, cwd=out,
    )  # fmt: skip
    return _rows(out / "outcomes.jsonl", args.task)


def via_server(args: DeployPathsConfig, out: Path, horizon: int) -> list[dict]:
    from lerobot_robot_embodied_sim import EmbodiedSim, EmbodiedSimConfig

    from embodied.deploy.client import PolicyClient
    from embodied.deploy.robot_loop import RemoteDriver

    port = free_port()
    server = start_server(Path(args.policy), port, out / "serve.log")
    robot = EmbodiedSim(EmbodiedSimConfig(task=args.task, instruction=args.instruction,
                                          seed=args.seed, episode_steps=horizon,
                                          outcomes_path=str(out / "outcomes.jsonl")))  # fmt: skip
    try:
        robot.connect()
        with PolicyClient(port=port, deadline_s=30) as client:
            driver = RemoteDriver(robot, client, instruction=args.instruction)
            for _ in range(args.episodes):
                held = driver.run(steps=horizon)
                if held:
                    sys.exit(f"deploy_paths: the server path held the arm {held} times")
        robot.disconnect()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return _rows(out / "outcomes.jsonl", args.task)


def main() -> None:
    try:
        args = parse(DeployPathsConfig, __doc__)
    except ConfigError as err:
        sys.exit(f"deploy_paths: {err}")
    if not args.policy:
        sys.exit("deploy_paths: --policy=CKPT is required")
    from embodied.report import paired_outcomes
    from envs.tasks import get_task

    horizon = get_task(args.task).horizon
    results, seconds = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, run in [("embodied eval", lambda o: via_eval(args, o)),
                          ("lerobot-record", lambda o: via_lerobot_record(args, o, horizon)),
                          ("embodied serve", lambda o: via_server(args, o, horizon))]:  # fmt: skip
            out = Path(tmp) / name.replace(" ", "_")
            out.mkdir()
            start = time.perf_counter()
            results[name] = run(out)
            seconds[name] = time.perf_counter() - start
    names = list(results)
    rows = [[n, f"{sum(r['success'] for r in results[n])}/{len(results[n])}",
             f"{seconds[n]:.0f}"] for n in names]  # fmt: skip
    print_table(["path", "successes", "wall s"], rows)
    pairs = {}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            pairs[f"{a} vs {b}"] = paired_outcomes(results[a], results[b], args.task)
    print_table(["pair", "seeds", "only 2nd succeeded", "only 1st succeeded", "sign test p"],
                [[k, v["episodes"], v["gained"], v["lost"], f"{v['p_value']:.2f}"]
                 for k, v in pairs.items()])  # fmt: skip
    write_json(args.json, {"policy": args.policy, "task": args.task, "episodes": args.episodes,
                           "success": {n: [r["success"] for r in results[n]] for n in names},
                           "wall_s": seconds, "pairs": pairs})  # fmt: skip


if __name__ == "__main__":
    main()
