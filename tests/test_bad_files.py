"""Every kind of file we read, corrupted every way a disk or a crash corrupts one.

Each case copies a finished tiny run (dataset, policy, world model, reward model), corrupts
one file one way (truncated, emptied, filled with garbage, or with a field of the wrong
type), and runs the command a user would run on it through the CLI. It must end in one line
naming the file and the problem, never a traceback or a silent result. Caches are derived
data: a corrupt frame cache is rebuilt and the command succeeds. A corrupt stage record
makes the pipeline run that stage again.

`EMBODIED_FAULT_REPORT=faults.json pytest tests/test_bad_files.py` writes the tally.
"""

import contextlib
import io
import json
import os
import shutil
from pathlib import Path

import pytest
from tiny import POLICY, REWARD_MODEL, pipeline_config, train_tiny

from embodied import cli

pytestmark = pytest.mark.sim

HOW = ("truncated", "emptied", "garbage", "wrong_type")
POLICY_DIR = "policy/checkpoints/0000002/pretrained_model"
WM_DIR = "wm/checkpoints/0000002/pretrained_model"
RM_DIR = "rm/checkpoints/0000002/pretrained_model"


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A dataset of 2 Lift episodes and a tiny policy, world model and reward model."""
    from embodied.data.record import CollectConfig, collect
    from embodied.data.source import DatasetConfig
    from embodied.train_reward_model import TrainRewardModelConfig, train_reward_model

    out = tmp_path_factory.mktemp("finished")
    collect(CollectConfig(task="lift", episodes=2, root=str(out / "data"), success_hold=0))
    data = DatasetConfig(root=str(out / "data"))
    train_tiny(data, out)
    train_reward_model(TrainRewardModelConfig(
        dataset=data, output_dir=str(out / "rm"), reward_model=dict(REWARD_MODEL), steps=2,
        batch_size=4, holdout_every=2))  # fmt: skip
    return out


# ---- wrong-typed fields, one per kind of file --------------------------------------------


def _edit_json(path: Path, edit) -> None:
    content = json.loads(path.read_text())
    edit(content)
    path.write_text(json.dumps(content))


def _parquet_column_as_text(column: str):
    def edit(path: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        i = table.schema.get_field_index(column)
        text = pa.array([str(v) for v in table.column(i).to_pylist()])
        pq.write_table(table.set_column(i, column, text), path)

    return edit


def _tensor_reshaped(name: str = ""):
    """A tensor (`name`, or the first) saved with the wrong shape."""

    def edit(path: Path) -> None:
        import torch
        from safetensors.torch import load_file, save_file

        tensors = load_file(path)
        tensors[name or sorted(tensors)[0]] = torch.zeros(3)
        save_file(tensors, path)

    return edit


def _video_of_another_size(path: Path) -> None:
    import numpy as np

    from embodied.video import write_mp4

    path.unlink()
    write_mp4(path, [np.zeros((16, 16, 3), np.uint8)] * 3)


def _set(key, value):
    return lambda path: _edit_json(path, lambda c: c.__setitem__(key, value))


def _stat_as_text(path: Path) -> None:
    _edit_json(path, lambda c: c["action"].__setitem__("mean", "high"))


def _first_step_config(path: Path) -> None:
    _edit_json(path, lambda c: c["steps"][0].__setitem__("config", "fast"))


# ---- the commands that read each file ----------------------------------------------------

TINY_POLICY = [f"--policy.{k}={list(v) if isinstance(v, tuple) else v}" for k, v in POLICY.items()]


def _train_policy(run: Path) -> list[str]:
    return ["train-policy", f"--dataset.root={run}/data", f"--output_dir={run}/out",
            "--steps=1", "--batch_size=2", *TINY_POLICY]  # fmt: skip


def _eval(run: Path) -> list[str]:
    return ["eval", f"--policy.path={run}/{POLICY_DIR}", f"--output_dir={run}/out",
            "--eval.n_episodes=1", "--eval.videos=0"]  # fmt: skip


def _eval_world_model(run: Path) -> list[str]:
    return ["eval-world-model", f"--world_model.path={run}/{WM_DIR}",
            f"--reward_model.path={run}/{RM_DIR}", f"--policy.path={run}/{POLICY_DIR}",
            f"--dataset.root={run}/data", f"--output_dir={run}/out", "--open_loop_steps=2",
            "--videos=0", "--policy_episodes=2", "--policy_horizon=10",
            "--holdout_every=0"]  # fmt: skip


# (kind of file, its path in the run, the command, how its field gets the wrong type)
FILES = [
    ("dataset info.json", "data/meta/info.json", _train_policy, _set("fps", "thirty")),
    ("dataset stats.json", "data/meta/stats.json", _train_policy, _stat_as_text),
    ("dataset tasks parquet", "data/meta/tasks.parquet", _train_policy,
     _parquet_column_as_text("task_index")),
    ("dataset episodes parquet", "data/meta/episodes/chunk-000/file-000.parquet",
     _train_policy, _parquet_column_as_text("dataset_from_index")),
    ("dataset data parquet", "data/data/chunk-000/file-000.parquet", _train_policy,
     _parquet_column_as_text("action")),
    ("dataset video mp4", "data/videos/observation.images.wrist/chunk-000/file-000.mp4",
     _train_policy, _video_of_another_size),
    ("policy config.json", f"{POLICY_DIR}/config.json", _eval, _set("chunk_size", "ten")),
    ("policy model.safetensors", f"{POLICY_DIR}/model.safetensors", _eval, _tensor_reshaped()),
    ("policy preprocessor json", f"{POLICY_DIR}/policy_preprocessor.json", _eval,
     _first_step_config),
    ("policy preprocessor statistics",
     f"{POLICY_DIR}/policy_preprocessor_step_4_normalizer_processor.safetensors", _eval,
     _tensor_reshaped("observation.state.mean")),
    ("policy postprocessor json", f"{POLICY_DIR}/policy_postprocessor.json", _eval,
     _set("steps", "unnormalize")),
    ("policy postprocessor statistics",
     f"{POLICY_DIR}/policy_postprocessor_step_0_unnormalizer_processor.safetensors", _eval,
     _tensor_reshaped("action.mean")),
    ("world-model config.json", f"{WM_DIR}/config.json", _eval_world_model,
     _set("context", "two")),
    ("world-model model.safetensors", f"{WM_DIR}/model.safetensors", _eval_world_model,
     _tensor_reshaped()),
    ("reward-model config.json", f"{RM_DIR}/config.json", _eval_world_model,
     _set("threshold", "high")),
    ("reward-model model.safetensors", f"{RM_DIR}/model.safetensors", _eval_world_model,
     _tensor_reshaped()),
]  # fmt: skip


def corrupt(path: Path, how: str, wrong_type) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "emptied":
        path.write_bytes(b"")
    elif how == "garbage":
        path.write_bytes(os.urandom(max(len(data), 64)))
    else:
        wrong_type(path)


def run_cli(argv: list[str]) -> tuple[int | str, str]:
    """(exit code, or the exception that escaped; stderr) of `embodied ARGV` in this process."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli.main(argv)
        except Exception as exc:  # what a user would see as a traceback
            code = f"traceback: {type(exc).__name__}: {exc}"
    return code, err.getvalue()


def _copy(finished: Path, tmp_path: Path, monkeypatch) -> Path:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    monkeypatch.setenv("EMBODIED_CACHE_DIR", str(tmp_path / "cache"))  # nothing decoded yet
    return run


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("kind,rel,command,wrong_type", FILES, ids=[f[0] for f in FILES])
def test_a_corrupt_file_is_one_line_naming_it(
    finished, tmp_path, monkeypatch, fault_report, kind, rel, command, wrong_type, how
):
    run = _copy(finished, tmp_path, monkeypatch)
    corrupt(run / rel, how, wrong_type)
    code, stderr = run_cli(command(run))
    said = [line for line in stderr.splitlines() if line.startswith("embodied ")]
    clear = code == 2 and len(said) == 1 and str(run / rel) in said[0]
    fault_report("file corrupted", f"{kind} {how}", "clear error" if clear else
                 f"exit {code}: {stderr.strip()[-300:]}")  # fmt: skip
    assert clear, (code, stderr[-2000:])
    assert "Traceback" not in stderr


@pytest.mark.parametrize("how", HOW)
def test_a_corrupt_frame_cache_is_rebuilt(finished, tmp_path, monkeypatch, fault_report, how):
    run = _copy(finished, tmp_path, monkeypatch)
    assert run_cli(_train_policy(run))[0] == 0  # builds the cache
    (cache,) = (tmp_path / "cache").glob("*.zarr")
    chunks = sorted(p for p in (cache / "observation.images.wrist").rglob("*") if p.is_file())
    target = cache / "observation.images.wrist/zarr.json" if how == "wrong_type" else chunks[-1]
    corrupt(target, how, _set("data_type", "float64"))
    shutil.rmtree(run / "out")
    code, stderr = run_cli(_train_policy(run))
    rebuilt = code == 0 and f"frame cache {cache} is corrupt" in stderr
    fault_report("file corrupted", f"frame cache {how}", "rebuilt" if rebuilt else
                 f"exit {code}: {stderr.strip()[-300:]}")  # fmt: skip
    assert rebuilt, (code, stderr[-2000:])
    assert run_cli(_train_policy(run) + ["--steps=2"])[0] == 0  # the rebuilt cache is whole


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory) -> Path:
    from embodied.pipeline import run_pipeline

    config = pipeline_config(tmp_path_factory.mktemp("pipeline") / "run")
    run_pipeline(config)
    return config


@pytest.mark.parametrize("how", HOW)
def test_a_corrupt_stage_record_reruns_its_stage(pipeline_run, fault_report, capsys, how):
    from embodied.pipeline import run_pipeline

    record = Path(pipeline_run.output_dir) / "stages/report.json"
    corrupt(record, how, _set("config", 5))
    ran = list(run_pipeline(pipeline_run)["wall_s"])
    said = [line for line in capsys.readouterr().err.splitlines() if str(record) in line]
    rerun = ran == ["report"] and len(said) == 1 and "runs again" in said[0]
    fault_report("file corrupted", f"stage record {how}", "stage reran" if rerun else
                 f"ran {ran}: {said}")  # fmt: skip
    assert rerun, (ran, said)
    assert json.loads(record.read_text())["config"] == pipeline_run.output_dir  # written anew
