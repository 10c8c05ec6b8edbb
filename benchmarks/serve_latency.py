"""Policy server latency: round trip through `embodied serve` on localhost vs in-process.

The tiny VLA (configs/policy/tiny.yaml; two 64x64 cameras, 8-D state, 7-D actions) is saved
as a checkpoint, served by `embodied serve` in its own process, and asked for action chunks
at batch 1 by `embodied.deploy.client.PolicyClient`. In-process latency is the same work
(processor, network, un-normalization) called directly. Target: round-trip p50 <= 2 x
in-process p50 + 2 ms. Throughput with several concurrent clients (whose requests the server
batches) is reported beside it.
Run: .venv/bin/python -m benchmarks.serve_latency --json=serve_latency.json
"""

import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.common import BenchmarkConfig, parse, print_table, write_json
from embodied.config import ConfigError

REPO = Path(__file__).resolve().parents[1]


@dataclass
class ServeLatencyConfig(BenchmarkConfig):
    """Attributes (besides the shared ones in BenchmarkConfig):
    requests: timed requests per measurement (after 20 warm-up ones).
    clients: concurrent clients for the throughput figure.
    """

    requests: int = 300
    clients: int = 4


def tiny_checkpoint(folder: Path) -> Path:
    """The tiny VLA with its processors (unit statistics), saved as a checkpoint."""
    import torch
    import yaml
    from lerobot.policies.factory import make_pre_post_processors

    from benchmarks.policy_speed import build

    settings = yaml.safe_load((REPO / "configs/policy/tiny.yaml").read_text())["policy"]
    settings["vision_channels"] = tuple(settings["vision_channels"])
    policy = build(settings)
    unit = {"mean": 0.0, "std": 1.0, "min": -1.0, "max": 1.0}
    stats = {key: {k: torch.full(f.shape, v) for k, v in unit.items()}
             for key, f in {**policy.config.input_features,
                            **policy.config.output_features}.items()}  # fmt: skip
    pre, post = make_pre_post_processors(policy.config, dataset_stats=stats)
    for part in (policy, pre, post):
        part.save_pretrained(folder)
    return folder


def observation(rng: np.random.Generator) -> dict:
    frame = lambda: rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)  # noqa: E731
    return {"observation.images.agentview": frame(), "observation.images.wrist": frame(),
            "observation.state": rng.standard_normal(8).astype(np.float32),
            "task": "lift the red cube"}  # fmt: skip


def timed(call, n: int) -> list[float]:
    for _ in range(20):
        call()
    out = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        out.append((time.perf_counter() - start) * 1000)
    return out


def in_process_ms(checkpoint: Path, obs: dict, n: int) -> list[float]:
    from embodied.policy_io import load_policy
    from embodied.serve import PolicyServer

    server = PolicyServer(*load_policy(checkpoint))
    checked = server.spec.check_request(obs)
    return timed(lambda: server.infer([checked]), n)


def start_server(checkpoint: Path, port: int, log: Path) -> subprocess.Popen:
    command = [str(REPO / ".venv/bin/embodied"), "serve", f"--policy.path={checkpoint}",
               f"--port={port}", "--log_every=100000"]  # fmt: skip
    process = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return process
        if process.poll() is not None:
            sys.exit(f"serve_latency: the server exited:\n{log.read_text()[-2000:]}")
        time.sleep(0.2)
    process.kill()
    sys.exit("serve_latency: the server did not start within 120 s")


def concurrent_rate(port: int, obs: dict, clients: int, n: int) -> float:
    """Answers per second with `clients` connections asking at once."""
    from embodied.deploy.client import PolicyClient

    connections = [PolicyClient(port=port, deadline_s=30) for _ in range(clients)]
    barrier = threading.Barrier(clients + 1)

    def ask(client):
        barrier.wait()
        for _ in range(n):
            client.infer(obs)

    threads = [threading.Thread(target=ask, args=(c,)) for c in connections]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    for c in connections:
        c.close()
    return clients * n / elapsed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    try:
        args = parse(ServeLatencyConfig, __doc__)
    except ConfigError as err:
        sys.exit(f"serve_latency: {err}")
    from embodied.deploy.client import PolicyClient

    obs = observation(np.random.default_rng(0))
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = tiny_checkpoint(Path(tmp) / "tiny")
        local = in_process_ms(checkpoint, obs, args.requests)
        port = free_port()
        server = start_server(checkpoint, port, Path(tmp) / "serve.log")
        try:
            with PolicyClient(port=port, deadline_s=30) as client:
                remote = timed(lambda: client.infer(obs), args.requests)
            rate_1 = concurrent_rate(port, obs, 1, args.requests // 4)
            rate_n = concurrent_rate(port, obs, args.clients, args.requests // 4)
        finally:
            server.terminate()
            server.wait(timeout=30)
    figures = {
        "in_process_p50_ms": float(np.median(local)),
        "in_process_p99_ms": float(np.percentile(local, 99)),
        "round_trip_p50_ms": float(np.median(remote)),
        "round_trip_p99_ms": float(np.percentile(remote, 99)),
        "target_p50_ms": 2 * float(np.median(local)) + 2,
        "answers_per_s_1_client": rate_1,
        f"answers_per_s_{args.clients}_clients": rate_n,
    }
    figures["target_met"] = figures["round_trip_p50_ms"] <= figures["target_p50_ms"]
    print_table(["figure", "value"], [[k, f"{v:.2f}" if isinstance(v, float) else v]
                                      for k, v in figures.items()])  # fmt: skip
    write_json(args.json, {**figures, "requests": args.requests, "clients": args.clients})


if __name__ == "__main__":
    main()
