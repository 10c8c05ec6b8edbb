"""Deployment through LeRobot's own tools: `lerobot-eval` runs checkpoints of every origin.

The checkpoints are trained on LeRobot's PushT data (../shared) and judged by LeRobot's own
`lerobot-eval` in LeRobot's PushT env, as a user would: a subprocess, no helper of ours.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny import POLICY, train_tiny

from embodied.data.source import DatasetConfig
from embodied.policy_io import load_policy

BIN = Path(sys.executable).parent


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}  # headless (ALOHA)
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, f"{args[0]} failed:\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def pusht_checkpoints(lerobot_fixture, tmp_path_factory) -> dict[str, Path]:
    """A tiny VLA on PushT from each origin: `train-policy`, `finetune` (RL in a world model
    of the same data) and LeRobot's own `lerobot-train`."""
    from embodied.ray_utils import RaySettings
    from embodied.refs import PolicyRef, WorldModelRef
    from embodied.rl.finetune import AlgoSettings, FinetuneConfig, finetune

    root = lerobot_fixture("pusht_fixture")
    out = tmp_path_factory.mktemp("pusht")
    data = DatasetConfig(root=str(root))
    policy, world_model = train_tiny(data, out)
    finetuned = finetune(
        FinetuneConfig(
            iterations=1,
            horizon=4,
            save_every=1,
            ray=RaySettings(num_workers=0),
            algo=AlgoSettings(group_size=2, starts=1, minibatch_size=4),
            policy=PolicyRef(str(policy)),
            world_model=WorldModelRef(str(world_model)),
            dataset=data,
            output_dir=str(out / "rl"),
        )  # fmt: skip
    )
    flags = [f"--policy.{k}={list(v) if isinstance(v, tuple) else v}" for k, v in POLICY.items()]
    _run(
        [str(BIN / "lerobot-train"), "--policy.type=embodied_vla", "--policy.push_to_hub=false",
         "--policy.device=cpu", *flags, "--dataset.repo_id=local/pusht_fixture",
         f"--dataset.root={root}", "--dataset.video_backend=pyav", "--steps=2",
         "--batch_size=4", "--save_freq=2", "--num_workers=0", "--wandb.enable=false",
         f"--output_dir={out / 'lerobot_train'}"],
        cwd=out,
    )  # fmt: skip
    lerobot_trained = out / "lerobot_train/checkpoints/last/pretrained_model"
    return {"train-policy": policy, "finetune": finetuned, "lerobot-train": lerobot_trained}


@pytest.fixture(scope="module")
def aloha_checkpoint(lerobot_fixture, tmp_path_factory) -> Path:
    """A tiny VLA on LeRobot's ALOHA data: one 480x640 camera, 14-D state and actions."""
    from embodied.train_policy import TrainPolicyConfig, train_policy

    root = lerobot_fixture("aloha_sim_fixture")
    return train_policy(
        TrainPolicyConfig(dataset=DatasetConfig(root=str(root)), policy=dict(POLICY), steps=2,
                          output_dir=str(tmp_path_factory.mktemp("aloha")), batch_size=4)
    )  # fmt: skip


@pytest.mark.parametrize(
    "origin, env",
    [("train-policy", "pusht"), ("finetune", "pusht"), ("lerobot-train", "pusht"),
     ("train-policy", "aloha")],
)  # fmt: skip
def test_lerobot_eval_runs_our_checkpoints(request, origin, env, tmp_path):
    if env == "aloha":
        checkpoint = request.getfixturevalue("aloha_checkpoint")
        env_flags = ["--env.type=aloha", "--env.task=AlohaInsertion-v0"]
    else:
        checkpoint = request.getfixturevalue("pusht_checkpoints")[origin]
        env_flags = ["--env.type=pusht"]
    _run(
        [str(BIN / "lerobot-eval"), f"--policy.path={checkpoint}", "--policy.device=cpu",
         *env_flags, "--env.episode_length=8", "--eval.n_episodes=2", "--eval.batch_size=2",
         f"--output_dir={tmp_path / 'eval'}"],
        cwd=tmp_path,
    )  # fmt: skip
    info = json.loads((tmp_path / "eval/eval_info.json").read_text())
    assert info["overall"]["n_episodes"] == 2


def test_cameras_of_any_size_are_resized_to_the_models_resolution(pusht_checkpoints):
    """PushT's 96x96 camera is read at the VLA's `image_size` (64x64): the processor resizes
    whatever size arrives, so a 480x640 frame of the same scene gives the same action."""
    policy, pre, _ = load_policy(pusht_checkpoints["train-policy"])
    assert tuple(policy.config.image_size) == (64, 64)
    scene = torch.rand(1, 3, 8, 8)
    chunks = []
    for size in [(96, 96), (480, 640), (64, 64)]:
        frame = torch.nn.functional.interpolate(scene, size=size, mode="nearest")[0]
        batch = pre({"observation.image": frame, "observation.state": torch.zeros(2), "task": ""})
        assert tuple(batch["observation.image"].shape) == (1, 3, 64, 64)
        chunks.append(policy.predict_action_chunk(batch))
    assert torch.allclose(chunks[0], chunks[1], atol=1e-2)  # resampling differs at edges
    assert torch.allclose(chunks[0], chunks[2], atol=1e-2)
    frame = torch.rand(1, 64, 64, 3).permute(0, 3, 1, 2)  # channels-last, as ours are built
    state = {"observation.state": torch.zeros(1, 2), "task": [""]}
    assert torch.equal(  # LeRobot's tools hand over contiguous frames: the same arithmetic
        policy.predict_action_chunk(pre({"observation.image": frame, **state})),
        policy.predict_action_chunk(pre({"observation.image": frame.contiguous(), **state})),
    )
    with pytest.raises(ValueError, match="expected float images in"):
        pre({"observation.image": torch.zeros(3, 96, 96, dtype=torch.uint8),
             "observation.state": torch.zeros(2), "task": ""})  # fmt: skip


@pytest.fixture(scope="module")
def served(pusht_checkpoints):
    """`embodied serve`'s server on a free localhost port, its inference loop in a thread."""
    import threading

    from embodied.serve import PolicyServer, ServeConfig, start_server

    port = _free_port()
    server = PolicyServer(*load_policy(pusht_checkpoints["train-policy"]))
    stop = threading.Event()
    websocket_server = start_server(server, ServeConfig(port=port, max_message_mb=1.0))
    threads = [
        threading.Thread(target=websocket_server.serve_forever, daemon=True),
        threading.Thread(target=server.run_inference, args=(stop,), daemon=True),
    ]
    for t in threads:
        t.start()
    yield server, port
    stop.set()
    websocket_server.shutdown()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _obs(rng, size=(96, 96)) -> dict:
    import numpy as np

    return {"observation.image": rng.integers(0, 256, (*size, 3), dtype=np.uint8),
            "observation.state": rng.uniform(100, 400, 2).astype(np.float32),
            "task": "push the T"}  # fmt: skip


def test_served_chunks_equal_the_in_process_policy(served, pusht_checkpoints):
    import numpy as np

    from embodied.acting import policy_batch
    from embodied.deploy.client import PolicyClient

    server, port = served
    policy, pre, post = load_policy(pusht_checkpoints["train-policy"])
    rng = np.random.default_rng(0)
    with PolicyClient(port=port) as client:
        assert client.spec.action_names == ["action_0", "action_1"]
        assert client.spec.cameras == {"observation.image": [3, 96, 96]}
        for size in [(96, 96), (480, 640)]:
            obs = _obs(rng, size)
            chunk = client.infer(obs)
            batch = {k: v[None] for k, v in obs.items() if k != "task"} | {"task": [obs["task"]]}
            with torch.no_grad():
                expected = post(
                    policy.predict_action_chunk(pre(policy_batch(batch, ["observation.image"])))
                )
            assert chunk.shape == (10, 2)
            assert np.allclose(chunk, expected[0].numpy(), atol=1e-4)


def test_bad_requests_get_an_error_and_the_server_keeps_serving(served):
    import msgpack
    import numpy as np
    from websockets.sync.client import connect

    from embodied.deploy.wire import pack, unpack

    _, port = served
    good = _obs(np.random.default_rng(1))
    bad = {
        "garbage bytes": b"\xc1\x00\xff garbage",
        "a pickle": __import__("pickle").dumps({"observation.state": 1}),
        "a text frame": "hello",
        "a list, not a map": msgpack.packb([1, 2, 3]),
        "an extension type": msgpack.packb({"x": msgpack.ExtType(1, b"exec")}),
        "an object array": msgpack.packb({"observation.state": {"__ndarray__": True,
                                          "data": b"\0" * 8, "dtype": "|O", "shape": [1]}}),
        "a truncated array": pack({**good, "observation.state": np.zeros(2, np.float32)})[:-3],
        "a missing camera": pack({k: v for k, v in good.items() if k != "observation.image"}),
        "an unknown key": pack({**good, "reward": np.zeros(1)}),
        "a wrong state size": pack({**good, "observation.state": np.zeros(7, np.float32)}),
        "a NaN state": pack({**good, "observation.state": np.full(2, np.nan, np.float32)}),
        "a float image": pack({**good, "observation.image": np.zeros((96, 96, 3), np.float32)}),
        "a grey image": pack({**good, "observation.image": np.zeros((96, 96), np.uint8)}),
        "a huge image side": pack({**good, "observation.image": np.zeros((1, 5000, 3), np.uint8)}),
        "a long instruction": pack({**good, "task": "x" * 5000}),
        "an instruction that is not text": pack({**good, "task": 3}),
    }  # fmt: skip
    with connect(f"ws://127.0.0.1:{port}") as ws:
        ws.recv()  # the spec
        for name, payload in bad.items():
            ws.send(payload)
            answer = unpack(ws.recv(timeout=30))
            assert "error" in answer and "actions" not in answer, name
        ws.send(pack(good))
        assert unpack(ws.recv(timeout=30))["actions"].shape == (10, 2)


def test_oversized_and_vanishing_clients_leave_the_others_served(served):
    import numpy as np
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    from embodied.deploy.client import PolicyClient
    from embodied.deploy.wire import pack

    _, port = served
    rng = np.random.default_rng(2)
    with PolicyClient(port=port) as bystander:
        with connect(f"ws://127.0.0.1:{port}") as ws:  # over the 1 MB limit: closed, 1009
            ws.recv()
            ws.send(pack({**_obs(rng), "observation.image": np.zeros((800, 800, 3), np.uint8)}))
            with pytest.raises(ConnectionClosed, match="1009"):
                ws.recv(timeout=30)
        for _ in range(3):  # asks, then leaves before the answer
            ws = connect(f"ws://127.0.0.1:{port}")
            ws.recv()
            ws.send(pack(_obs(rng)))
            ws.close()
        assert bystander.infer(_obs(rng)).shape == (10, 2)


def test_several_clients_at_once_each_get_their_own_answer(served):
    import threading

    import numpy as np

    from embodied.deploy.client import PolicyClient

    server, port = served
    rng = np.random.default_rng(3)
    observations = [_obs(rng) for _ in range(4)]
    expected = [server.infer([server.spec.check_request(o)])[0] for o in observations]
    got: dict[int, list] = {}

    def ask(i):
        with PolicyClient(port=port, deadline_s=30) as client:
            got[i] = [client.infer(observations[i]) for _ in range(5)]

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, answers in got.items():
        assert all(np.allclose(a, expected[i], atol=1e-4) for a in answers)
    assert len(got) == 4


def test_serve_binds_to_localhost_unless_told_otherwise(capsys):
    from embodied.cli import main

    assert main(["serve", "--policy.path=/nowhere", "--host=0.0.0.0"]) == 2
    assert "--allow_remote=true" in capsys.readouterr().err
    assert main(["serve", "--policy.path=/nowhere"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_the_arm_holds_on_nan_bad_answers_and_a_silent_server(served):
    import threading

    import numpy as np

    from embodied.deploy.client import PolicyClient
    from embodied.deploy.safety import ActionGuard, ChunkedRemotePolicy, SafetyError
    from embodied.serve import PolicyServer, ServeConfig, start_server

    server, port = served
    spec = server.spec
    with pytest.raises(SafetyError, match="2 action values; the robot takes 6"):
        ActionGuard(spec, [f"joint{i}.pos" for i in range(6)])
    with pytest.raises(SafetyError, match="mean"):
        ActionGuard(spec, ["x.pos", "y.pos"])
    guard = ActionGuard(spec, ["action_0", "action_1"], max_delta=10.0)
    low, high = np.asarray(spec.action_min), np.asarray(spec.action_max)
    assert np.allclose(guard(high + 100), high)  # clipped to the training range
    assert np.allclose(guard(low), high - 10)  # at most 10 per tick
    assert guard(np.array([np.nan, 200.0])) is None and "holding position" in guard.reason
    assert guard(np.array([np.inf, 200.0])) is None and "finite" in guard.reason
    assert guard.as_robot_action(np.array([1.0, 2.0])) == {"action_0": 1.0, "action_1": 2.0}

    remote = ChunkedRemotePolicy(
        PolicyClient(port=port), ActionGuard(spec, ["action_0", "action_1"])
    )
    rng = np.random.default_rng(4)
    actions = [remote(_obs(rng)) for _ in range(spec.n_action_steps + 1)]  # a new chunk after 5
    assert all(a is not None and a.shape == (2,) for a in actions)

    silent = PolicyServer(server.policy, server.pre, server.post)  # its inference loop never runs
    free = _free_port()
    ws = start_server(silent, ServeConfig(port=free))
    threading.Thread(target=ws.serve_forever, daemon=True).start()
    stalled = ChunkedRemotePolicy(PolicyClient(port=free, deadline_s=0.2),
                                  ActionGuard(spec, ["action_0", "action_1"]))  # fmt: skip
    assert stalled(_obs(rng)) is None
    assert "no answer within the 0.2 s deadline" in stalled.guard.reason
    ws.shutdown()


# --- the simulated arm in LeRobot's robot stack (lerobot_robot_embodied_sim) ---------------

ACT = ["--policy.type=act", "--policy.chunk_size=10", "--policy.n_action_steps=10",
       "--policy.dim_model=32", "--policy.dim_feedforward=64", "--policy.n_encoder_layers=1",
       "--policy.latent_dim=8", "--policy.pretrained_backbone_weights=null"]  # fmt: skip


@pytest.fixture(scope="module")
def lift_checkpoints(recorded, tmp_path_factory) -> dict[str, Path]:
    """Our VLA (`train-policy`) and LeRobot's ACT (`lerobot-train`) on our Lift/cubes data."""
    from embodied.train_policy import TrainPolicyConfig, train_policy

    root, _ = recorded
    out = tmp_path_factory.mktemp("lift")
    vla = train_policy(
        TrainPolicyConfig(
            dataset=DatasetConfig(root=str(root)),
            output_dir=str(out / "vla"),
            policy=dict(POLICY),
            steps=2,
            batch_size=4,
        )  # fmt: skip
    )
    _run(
        [str(BIN / "lerobot-train"), *ACT, "--policy.push_to_hub=false", "--policy.device=cpu",
         "--dataset.repo_id=local/lift_cubes", f"--dataset.root={root}",
         "--dataset.video_backend=pyav", "--steps=2", "--batch_size=4", "--save_freq=2",
         "--num_workers=0", "--wandb.enable=false", f"--output_dir={out / 'act'}"],
        cwd=out,
    )  # fmt: skip
    return {"vla": vla, "act": out / "act/checkpoints/last/pretrained_model"}


def _record(checkpoint: Path, out: Path, cameras: str = "[agentview,wrist]"):
    out.mkdir(exist_ok=True)
    return subprocess.run(
        [str(BIN / "lerobot-record"), "--robot.type=embodied_sim", "--robot.task=lift",
         f"--robot.camera_names={cameras}", "--robot.instruction=lift the red cube",
         "--robot.episode_steps=4", "--robot.episode_time_s=1.0",
         f"--robot.outcomes_path={out / 'outcomes.jsonl'}",
         f"--policy.path={checkpoint}", "--policy.device=cpu",
         "--dataset.repo_id=local/eval_sim", f"--dataset.root={out / 'data'}",
         "--dataset.single_task=lift the red cube", "--dataset.fps=20",
         "--dataset.episode_time_s=1.0", "--dataset.reset_time_s=0", "--dataset.num_episodes=2",
         "--dataset.push_to_hub=false", "--play_sounds=false"],
        cwd=out, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


@pytest.mark.sim
@pytest.mark.parametrize("kind", ["vla", "act"])
def test_lerobot_record_drives_the_simulated_arm(lift_checkpoints, kind, tmp_path):
    """`lerobot-record --robot.type=embodied_sim --policy.path=...` runs the policy on seeded
    MuJoCo episodes and writes a LeRobot dataset that LeRobot's own class opens."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    done = _record(lift_checkpoints[kind], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    dataset = LeRobotDataset("local/eval_sim", root=tmp_path / "data", video_backend="pyav")
    assert dataset.num_episodes == 2 and 8 <= dataset.num_frames <= 40
    assert dataset.features["observation.state"]["names"][0] == "eef_x"
    assert dataset[0]["observation.images.wrist"].shape == (3, 64, 64)
    outcomes = [json.loads(x) for x in (tmp_path / "outcomes.jsonl").read_text().splitlines()]
    assert [(o["seed"], o["steps"]) for o in outcomes] == [(100_000, 4), (100_001, 4)]


@pytest.mark.sim
def test_a_robot_that_does_not_fit_the_checkpoint_is_refused(
    lift_checkpoints, pusht_checkpoints, tmp_path, served
):
    """Missing cameras, or actions of another meaning (a PushT policy on the arm): through
    lerobot-record and through our server, a clear error before any action."""
    from lerobot_robot_embodied_sim import EmbodiedSim, EmbodiedSimConfig

    from embodied.deploy.client import PolicyClient
    from embodied.deploy.robot_loop import RemoteDriver
    from embodied.deploy.safety import SafetyError

    done = _record(lift_checkpoints["vla"], tmp_path, cameras="[agentview]")
    assert done.returncode != 0
    assert "lacks ['observation.images.wrist']" in done.stderr
    assert not (tmp_path / "outcomes.jsonl").exists()  # no episode ran to its end
    for origin in ["train-policy", "lerobot-train"]:  # both record what their actions mean
        done = _record(pusht_checkpoints[origin], tmp_path / origin)
        assert "actions are ['action_0', 'action_1']; the robot or dataset" in done.stderr
    robot = EmbodiedSim(EmbodiedSimConfig(camera_names=["agentview"]))
    _, port = served  # a PushT policy: reads `observation.image`, 2-D state and actions
    with PolicyClient(port=port) as client, pytest.raises(SafetyError, match="cameras"):
        RemoteDriver(robot, client)


@pytest.mark.sim
def test_the_server_drives_the_simulated_arm_as_eval_does(lift_checkpoints, tmp_path):
    """`embodied serve` + `RemoteDriver` on the simulated arm send exactly the actions the
    checkpoint gives in-process for the same seeded scene."""
    import threading

    import numpy as np
    from lerobot_robot_embodied_sim import EmbodiedSim, EmbodiedSimConfig

    from embodied.acting import PolicyActor
    from embodied.deploy.client import PolicyClient
    from embodied.deploy.robot_loop import RemoteDriver
    from embodied.serve import PolicyServer, ServeConfig, start_server
    from envs.robosuite_env import make_env

    checkpoint = lift_checkpoints["vla"]
    server, port = PolicyServer(*load_policy(checkpoint)), _free_port()
    stop = threading.Event()
    websocket_server = start_server(server, ServeConfig(port=port))
    threading.Thread(target=websocket_server.serve_forever, daemon=True).start()
    threading.Thread(target=server.run_inference, args=(stop,), daemon=True).start()
    settings = {"instruction": "lift the red cube", "episode_steps": 7,
                "outcomes_path": str(tmp_path / "outcomes.jsonl")}  # fmt: skip
    robot = EmbodiedSim(EmbodiedSimConfig(**settings))
    robot.connect()
    sent = []
    with PolicyClient(port=port, deadline_s=30) as client:
        driver = RemoteDriver(robot, client, instruction="lift the red cube")
        for _ in range(7):
            sent.append(list(driver.step().values()))
    robot.disconnect()
    stop.set()
    websocket_server.shutdown()

    env = make_env("lift", horizon=7)
    obs, _ = env.reset(seed=100_000, options={"task": "lift the red cube"})
    actor = PolicyActor(*load_policy(checkpoint))
    expected = []
    for _ in range(7):
        action = actor({k: np.asarray(v)[None] if k != "task" else [v] for k, v in obs.items()})
        expected.append(action[0, 0])
        obs, *_ = env.step(action[0, 0])
    assert np.allclose(np.array(sent), np.array(expected), atol=1e-4)
    outcome = json.loads((tmp_path / "outcomes.jsonl").read_text())
    assert outcome["seed"] == 100_000 and outcome["steps"] == 7


def test_the_arm_side_imports_no_torch_lerobot_or_simulator():
    """What runs on the robot's computer (client, safety, robot loop) stays light."""
    code = ("import sys, embodied.deploy.client, embodied.deploy.robot_loop; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'torch', 'lerobot', 'robosuite', 'mujoco', 'ray'}))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


def test_the_slim_install_runs_a_checkpoint_without_simulators_or_ray(pusht_checkpoints, tmp_path):
    """`pip install embodied` (no extras) in a clean virtual environment, from the locked
    versions: torch, lerobot and the VLA load and act through LeRobot's plugin registry and
    `embodied serve`'s server; robosuite, mujoco and ray are absent, and a command that needs
    them says which install it needs."""
    import shutil

    repo = Path(__file__).resolve().parents[1]
    uv = shutil.which("uv")
    assert uv, "uv is installed by scripts/setup.sh"
    venv = tmp_path / "venv"
    python = venv / "bin/python"
    requirements = tmp_path / "requirements.txt"
    _run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], cwd=repo)
    _run([uv, "export", "--frozen", "--no-hashes", "--no-dev", "--no-emit-project",
          "--quiet", "-o", str(requirements)], cwd=repo)  # fmt: skip
    _run([uv, "pip", "install", "--quiet", "--python", str(python), "-r", str(requirements)],
         cwd=repo)  # fmt: skip
    _run([uv, "pip", "install", "--quiet", "--python", str(python), "--no-deps", str(repo)],
         cwd=tmp_path)  # fmt: skip
    code = f"""
import importlib.util, numpy as np
absent = [m for m in ("robosuite", "mujoco", "ray") if importlib.util.find_spec(m)]
assert not absent, absent
from lerobot.utils.import_utils import register_third_party_plugins
from lerobot.policies.factory import get_policy_class
register_third_party_plugins()
assert get_policy_class("embodied_vla").__name__ == "VLAPolicy"
from embodied.policy_io import load_policy
from embodied.serve import PolicyServer
server = PolicyServer(*load_policy({str(pusht_checkpoints["train-policy"])!r}))
obs = {{"observation.image": np.zeros((96, 96, 3), np.uint8),
        "observation.state": np.zeros(2, np.float32), "task": ""}}
print(server.infer([server.spec.check_request(obs)]).shape)
"""
    done = _run([str(python), "-c", code], cwd=tmp_path)
    assert done.stdout.strip().endswith("(1, 10, 2)")
    collect = [str(venv / "bin/embodied"), "collect", "--task=lift", f"--root={tmp_path / 'd'}"]
    refused = subprocess.run(collect,
                             capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert refused.returncode == 2
    assert "needs 'robosuite', part of the full install: pip install 'embodied[full]'" in (
        refused.stderr
    )


# --- our tasks in LeRobot's own evaluator (envs.lerobot_eval) -------------------------------


@pytest.mark.sim
@pytest.mark.parametrize("kind", ["vla", "act"])
def test_lerobot_eval_judges_policies_on_our_tasks(lift_checkpoints, kind, tmp_path):
    """`lerobot-eval --env.discover_packages_path=envs.lerobot_eval --env.type=embodied`:
    LeRobot's tool runs ours and LeRobot's policies on our Lift, with our seeds."""
    _run(
        [str(BIN / "lerobot-eval"), "--env.discover_packages_path=envs.lerobot_eval",
         "--env.type=embodied", "--env.task=lift", "--env.episode_length=6",
         f"--policy.path={lift_checkpoints[kind]}", "--policy.device=cpu",
         "--eval.n_episodes=2", "--eval.batch_size=2", "--seed=100000",
         f"--output_dir={tmp_path / 'eval'}"],
        cwd=tmp_path,
    )  # fmt: skip
    info = json.loads((tmp_path / "eval/eval_info.json").read_text())
    assert info["overall"]["n_episodes"] == 2


def test_the_lerobot_eval_env_speaks_lerobot_evals_layout():
    import gymnasium as gym
    import numpy as np

    import envs.lerobot_eval  # noqa: F401  (registers embodied/<task>-v0)

    env = gym.make("embodied/lang_cubes-v0", cameras=["agentview"], horizon=3)
    assert env.unwrapped is env  # nothing wraps it, so lerobot-eval sees task_description
    obs, _ = env.reset(seed=100_001)
    assert set(obs) == {"pixels", "agent_pos"} and obs["pixels"]["agentview"].shape == (64, 64, 3)
    assert env.task_description in ("lift the red cube", "lift the green cube")
    for _ in range(3):
        obs, _, terminated, truncated, info = env.step(np.zeros(7, np.float32))
    assert truncated and not terminated and info["is_success"] is False
    assert env._max_episode_steps == 3
    env.close()
