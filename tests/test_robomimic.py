"""robomimic / MimicGen data from outside: converted to LeRobot v3.0, opened by LeRobot's own
`LeRobotDataset`, trained on, and evaluated in the matching task observing as it was trained
(robosuite's camera names and sizes, a state of named observables)."""

import json

import numpy as np
import pytest

from embodied.data.robomimic import ConvertRobomimicConfig, convert_robomimic
from embodied.types import ACTION, STATE, image_key

pytestmark = pytest.mark.sim

OBSERVABLES = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "cube_pos")
ENV_ARGS = {"env_name": "Lift", "type": 1,
            "env_kwargs": {"robots": ["Panda"],
                           "controller_configs": {"type": "OSC_POSE"}}}  # fmt: skip


def write_robomimic(path, images: bool, episodes: int = 2, steps: int = 30) -> dict:
    """A demo.hdf5 in robomimic's layout, recorded in our Lift by the scripted expert: what
    `dataset_states_to_obs.py` writes (84x84 agentview and wrist images, upright). Returns
    the arrays written, for comparison."""
    import h5py

    from envs.experts import EXPERTS, ExpertConfig
    from envs.robosuite_env import make_env

    env = make_env("lift", cameras=("agentview", "robot0_eye_in_hand"), image_size=84)
    written = {}
    with h5py.File(path, "w") as h5:
        data = h5.create_group("data")
        data.attrs["env_args"] = json.dumps(ENV_ARGS)
        for e in range(episodes):
            obs, _ = env.reset(seed=e)
            expert = EXPERTS["lift"](env, ExpertConfig(), np.random.default_rng(e))
            rows: dict[str, list] = {"actions": [], "rewards": [], "states": []}
            for _ in range(steps):
                raw = env.privileged
                for k in OBSERVABLES:
                    rows.setdefault(f"obs/{k}", []).append(np.asarray(raw[k]))
                for camera in ("agentview", "robot0_eye_in_hand"):
                    rows.setdefault(f"obs/{camera}_image", []).append(obs[image_key(camera)])
                rows["states"].append(env.sim_env.sim.get_state().flatten())
                action = expert.act()
                obs, _, _, _, info = env.step(action)
                rows["actions"].append(action)
                rows["rewards"].append(float(info["is_success"]))
            demo = data.create_group(f"demo_{e}")
            for key, values in rows.items():
                if images or not key.endswith("_image"):
                    demo.create_dataset(key, data=np.stack(values))
            demo.create_dataset("dones", data=np.arange(steps) == steps - 1)
            demo.attrs["num_samples"] = steps
            written[e] = {k: np.stack(v) for k, v in rows.items()}
    env.close()
    return written


def test_a_robomimic_file_converts_trains_and_evaluates_in_its_task(tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from tiny import POLICY

    from embodied.evaluate import EvalConfig, evaluate
    from embodied.mujoco_eval import EnvSettings, EvalSettings
    from embodied.refs import PolicyRef
    from embodied.train_policy import TrainPolicyConfig, train_policy

    file = tmp_path / "demo.hdf5"
    written = write_robomimic(file, images=True)
    root = convert_robomimic(ConvertRobomimicConfig(file=str(file), root=str(tmp_path / "data")))
    dataset = LeRobotDataset("local/robomimic", root=root, video_backend="pyav")  # LeRobot's own
    assert dataset.num_episodes == 2 and dataset.num_frames == 60
    features = dataset.meta.features
    assert tuple(features[image_key("robot0_eye_in_hand")]["shape"]) == (84, 84, 3)
    names = features[STATE]["names"]
    assert names[:3] == ["robot0_eef_pos.0", "robot0_eef_pos.1", "robot0_eef_pos.2"]
    assert len(names) == 9 and names[-1] == "robot0_gripper_qpos.1"
    frame = dataset[31]  # episode 1, step 1
    expected = np.concatenate([written[1][f"obs/{k}"][1] for k in OBSERVABLES[:3]])
    assert np.allclose(frame[STATE].numpy(), expected, atol=1e-6)
    assert np.allclose(frame[ACTION].numpy(), written[1]["actions"][1], atol=1e-6)
    video = frame[image_key("agentview")].numpy().transpose(1, 2, 0) * 255  # lossy AV1
    assert np.abs(video - written[1]["obs/agentview_image"][1]).mean() < 8
    source = json.loads((root / "meta/embodied_source.json").read_text())
    assert source["task"] == "lift" and source["state_observables"] == list(OBSERVABLES[:3])

    policy = train_policy(TrainPolicyConfig(
        dataset=dataset_config(root), output_dir=str(tmp_path / "policy"), policy=dict(POLICY),
        steps=1, batch_size=4))  # fmt: skip
    summary = evaluate(EvalConfig(
        policy=PolicyRef(str(policy)), env=EnvSettings(task="lift"),
        eval=EvalSettings(n_episodes=1, videos=0), output_dir=str(tmp_path / "eval")))  # fmt: skip
    assert summary["episodes"] == 1  # it observed robosuite's cameras and 9-D state


def dataset_config(root):
    from embodied.data.source import DatasetConfig

    return DatasetConfig(root=str(root))


def test_a_file_without_images_has_its_cameras_rendered_from_its_states(tmp_path):
    from embodied.data.dataset import CachedDataset
    from embodied.data.source import open_metadata

    written = write_robomimic(tmp_path / "states.hdf5", images=False, episodes=1, steps=10)
    root = convert_robomimic(ConvertRobomimicConfig(
        file=str(tmp_path / "states.hdf5"), root=str(tmp_path / "data")))  # fmt: skip
    arrays = CachedDataset(open_metadata(dataset_config(root))).arrays
    for camera in ("agentview", "robot0_eye_in_hand"):
        rendered = np.asarray(arrays[image_key(camera)], dtype=np.float32)
        recorded = written[0][f"obs/{camera}_image"].astype(np.float32)
        assert rendered.shape == recorded.shape == (10, 84, 84, 3)
        assert np.abs(rendered - recorded).mean() < 8  # the same scene, through AV1


def test_files_that_do_not_fit_are_refused_in_one_line(tmp_path, capsys):
    import h5py

    from embodied import cli

    (tmp_path / "garbage.hdf5").write_bytes(b"not hdf5")
    with h5py.File(tmp_path / "joints.hdf5", "w") as h5:
        h5.create_group("data").attrs["env_args"] = json.dumps(
            {"env_name": "Lift", "env_kwargs": {"controller_configs": {"type": "JOINT_VELOCITY"}}}
        )
        h5["data"].create_group("demo_0")
    cases = {"garbage.hdf5": "not a readable hdf5 file", "joints.hdf5": "JOINT_VELOCITY"}
    for name, said in cases.items():
        argv = ["convert-robomimic", str(tmp_path / name), f"--root={tmp_path}/out_{name}"]
        assert cli.main(argv) == 2
        lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("embodied")]
        assert len(lines) == 1 and said in lines[0] and name in lines[0], lines
        assert not (tmp_path / f"out_{name}").exists()
