"""`embodied serve`: a policy server for arms whose computer cannot run the model.

One websocket per client (openpi's convention): on connect the server sends the checkpoint's
`PolicySpec`; then each request (cameras as uint8 HWC, state, instruction, optional `id`) gets
one answer, ``{"actions": float32 (chunk_size, action_dim), "id": ..., "server_ms": ...}``, or
``{"error": "...", "id": ...}`` for a request that is not valid, after which the connection
keeps serving. A message over `max_message_mb` closes that connection (code 1009) and no
other. Messages are msgpack, never pickles (`embodied.deploy.wire`).

Each client has a connection thread that reads, checks and answers; the policy itself runs
in one inference loop (`PolicyServer.run_inference`, the main thread under `embodied serve`),
which takes every request waiting at that moment as one batch. One loop, not a model call per
connection thread: torch's CPU kernels run at a third of their speed when called from several
threads that each start their own thread pool (measured: 8.3 vs 3.2 ms for the tiny VLA).
Binds to 127.0.0.1 unless `--allow_remote=true` is given with another `--host`.
"""

import logging
import queue
import statistics
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embodied.config import ConfigError
from embodied.deploy.spec import PolicySpec
from embodied.deploy.wire import WireError, pack, unpack
from embodied.refs import PolicyRef
from embodied.types import ACTION, STATE, TASK

LOOPBACK = ("127.0.0.1", "localhost", "::1")
log = logging.getLogger("embodied.serve")


@dataclass
class ServeConfig:
    """Attributes:
    policy: the checkpoint to serve (--policy.path=CKPT).
    host, port: where to listen. Only the loopback address unless allow_remote.
    allow_remote: permit a host other than 127.0.0.1/localhost/::1, e.g. 0.0.0.0. The
        server has no authentication: expose it only on a network you trust.
    device: where the policy runs (cpu, cuda).
    max_message_mb: largest request accepted; a larger one closes its connection.
    log_every: log latency percentiles every this many answers.
    max_batch: most requests of different clients answered by one batched policy call.
    """

    policy: PolicyRef = field(default_factory=PolicyRef)
    host: str = "127.0.0.1"
    port: int = 8000
    allow_remote: bool = False
    device: str = "cpu"
    max_message_mb: float = 16.0
    log_every: int = 200
    max_batch: int = 8


def spec_of(policy: Any, post: Any) -> PolicySpec:
    """The checkpoint's spec: its cameras, sizes, action names and training action range
    (from the statistics its postprocessor un-normalizes with)."""
    config = policy.config
    stats = next((s.stats for s in post.steps if getattr(s, "stats", None)), {}) or {}
    action_stats = stats.get(ACTION, {})
    if "min" not in action_stats or "max" not in action_stats:
        raise ConfigError("the checkpoint's postprocessor holds no action min/max statistics")
    return PolicySpec(
        policy_type=config.type,
        cameras={k: list(f.shape) for k, f in sorted(config.image_features.items())},
        state_dim=int(config.robot_state_feature.shape[0]),
        action_dim=int(config.action_feature.shape[0]),
        action_names=list(getattr(config, "action_names", []) or []),
        action_min=[float(x) for x in np.asarray(action_stats["min"]).reshape(-1)],
        action_max=[float(x) for x in np.asarray(action_stats["max"]).reshape(-1)],
        chunk_size=int(config.chunk_size),
        n_action_steps=int(config.n_action_steps),
    )


class PolicyServer:
    """Requests in, answers out, as bytes: the part of the server that knows the policy.

    `answer` (any thread) checks a request and hands it to the inference loop, which must be
    running (`run_inference`); it never raises for a bad request.
    """

    def __init__(self, policy: Any, pre: Any, post: Any, max_batch: int = 8):
        self.policy, self.pre, self.post = policy, pre, post
        self.spec = spec_of(policy, post)
        self.max_batch = max_batch
        self._requests: queue.Queue[tuple[dict, Future]] = queue.Queue()
        self._latency_ms: list[float] = []

    def infer(self, batch: list[dict]) -> np.ndarray:
        """Checked observations with cameras of equal sizes -> action chunks (B, chunk_size,
        action_dim), unnormalized."""
        import torch

        from embodied.acting import policy_batch

        keys = list(self.spec.cameras)
        stacked = {k: np.stack([obs[k] for obs in batch]) for k in [*keys, STATE]}
        stacked[TASK] = [obs[TASK] for obs in batch]
        with torch.inference_mode():
            inputs = self.pre(policy_batch(stacked, keys))
            chunk = self.post(self.policy.predict_action_chunk(inputs))
        return chunk.float().cpu().numpy()

    def run_inference(self, stop: threading.Event) -> None:
        """Answer queued requests until `stop` is set: every request waiting (up to
        max_batch, with the first one's camera sizes) goes into one policy call."""
        while not stop.is_set():
            try:
                first = self._requests.get(timeout=0.1)
            except queue.Empty:
                continue
            batch, later = [first], []
            while len(batch) < self.max_batch:
                try:
                    item = self._requests.get_nowait()
                except queue.Empty:
                    break
                same = all(item[0][k].shape == first[0][k].shape for k in self.spec.cameras)
                (batch if same else later).append(item)
            for item in later:
                self._requests.put(item)
            try:
                chunks = self.infer([obs for obs, _ in batch])
            except Exception as err:  # the policy failed: every waiting client hears why
                for _, future in batch:
                    future.set_exception(err)
                continue
            for (_, future), chunk in zip(batch, chunks, strict=True):
                future.set_result(chunk)

    def answer(self, payload: bytes | str) -> bytes:
        start = time.perf_counter()
        request_id = None
        try:
            message = unpack(payload)
            request_id = _plain(message.get("id"))
            future: Future = Future()
            self._requests.put((self.spec.check_request(message), future))
            actions = future.result()
        except WireError as err:
            log.warning("bad request: %s", err)
            return pack({"error": str(err), "id": request_id})
        except Exception as err:
            log.error("the policy failed: %s", err)
            return pack({"error": f"the policy failed: {err}", "id": request_id})
        if not np.isfinite(actions).all():
            return pack({"error": "the policy produced NaN or inf actions", "id": request_id})
        elapsed = (time.perf_counter() - start) * 1000
        self._latency_ms.append(elapsed)
        return pack({"actions": actions.astype(np.float32), "id": request_id,
                     "server_ms": elapsed})  # fmt: skip

    def latency_summary(self) -> str:
        recent, self._latency_ms = self._latency_ms, []
        if not recent:
            return "no answers"
        p99 = float(np.percentile(recent, 99))
        return f"{len(recent)} answers, p50 {statistics.median(recent):.1f} ms, p99 {p99:.1f} ms"


def _plain(value: Any) -> Any:
    """An id echoed back only when it is a plain number or short string."""
    return value if isinstance(value, int | str) and len(str(value)) <= 64 else None


def check_host(config: ServeConfig) -> None:
    if config.host not in LOOPBACK and not config.allow_remote:
        raise ConfigError(
            f"--host={config.host} would accept connections from other machines; "
            "the server has no authentication. Pass --allow_remote=true to do it anyway"
        )
    if not 0 < config.port < 65536:
        raise ConfigError(f"--port={config.port} is not a port number")


def start_server(server: PolicyServer, config: ServeConfig):
    """A websockets server answering through `server`, not yet serving (call
    `serve_forever`, or run it in a thread; `shutdown` stops it)."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.server import serve

    metadata = pack(server.spec.to_dict())
    answered = [0]

    def handle(connection) -> None:
        peer = connection.remote_address
        log.info("client %s connected", peer)
        try:
            connection.send(metadata)
            for payload in connection:
                connection.send(server.answer(payload))
                answered[0] += 1
                if answered[0] % config.log_every == 0:
                    log.info("latency: %s", server.latency_summary())
        except ConnectionClosed as closed:
            log.info("client %s left (%s)", peer, closed)

    return serve(
        handle, config.host, config.port, max_size=int(config.max_message_mb * 2**20),
        compression=None,
    )  # fmt: skip


def serve_policy(config: ServeConfig) -> None:
    """`embodied serve --policy.path=CKPT`: load, then serve until interrupted."""
    from embodied.policy_io import CheckpointError, load_policy

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    check_host(config)
    if not config.policy.path:
        raise ConfigError("--policy.path is required")
    try:
        policy = load_policy(config.policy.path, device=config.device)
    except CheckpointError as err:
        raise ConfigError(str(err)) from None
    server = PolicyServer(*policy, max_batch=config.max_batch)
    stop = threading.Event()
    with start_server(server, config) as websocket_server:
        threading.Thread(target=websocket_server.serve_forever, daemon=True).start()
        log.info("serving %s on ws://%s:%d", config.policy.path, config.host, config.port)
        try:
            server.run_inference(stop)  # in the main thread: see the module's docstring
        except KeyboardInterrupt:
            log.info("stopped; %s", server.latency_summary())
        finally:
            websocket_server.shutdown()
