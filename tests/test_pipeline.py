import pytest

from embodied.data.record import CollectConfig
from embodied.pipeline import PipelineConfig, run_pipeline

pytestmark = pytest.mark.sim


def test_pipeline_skips_finished_stages_and_reruns_changed_ones(tmp_path, capsys):
    config = PipelineConfig(
        output_dir=str(tmp_path / "run"),
        collect=CollectConfig(task="lift", episodes=1, success_hold=0),
    )
    first = run_pipeline(config)
    assert "collect" in first["wall_s"] and first["dataset"]["episodes"] == 1
    second = run_pipeline(config)
    assert second["wall_s"] == {} and "done earlier" in capsys.readouterr().out
    config.collect.episodes = 2
    third = run_pipeline(config)
    assert "collect" in third["wall_s"] and third["dataset"]["episodes"] == 2


def test_interrupted_stage_is_rerun(tmp_path, monkeypatch):
    import embodied.data.record as record

    config = PipelineConfig(
        output_dir=str(tmp_path / "run"), collect=CollectConfig(task="lift", episodes=1)
    )
    monkeypatch.setattr(record, "_lerobot_frame", lambda frame: (_ for _ in ()).throw(OSError))
    with pytest.raises(OSError):
        run_pipeline(config)
    assert not (tmp_path / "run/stages/collect.json").exists()
    monkeypatch.undo()
    assert "collect" in run_pipeline(config)["wall_s"]


@pytest.mark.slow
def test_quickstart_config_runs_end_to_end(tmp_path):
    from embodied.cli import main

    assert main(["pipeline", "configs/quickstart.yaml", f"--output_dir={tmp_path}/qs"]) == 0
    assert (tmp_path / "qs/data/meta/info.json").exists()
