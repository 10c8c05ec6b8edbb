"""`embodied pipeline CONFIG`: every stage of the job, in order, skipping finished ones.

A stage's output lives in the run directory next to `stages/<name>.json`, which records
the config the stage ran with. A stage is skipped when that record exists and its config
is unchanged; a changed config or a missing record reruns it (and the stages after it).
Stages read earlier stages' artifacts by path only, so any stage can run elsewhere.
"""

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from embodied.config import to_dict
from embodied.data.record import CollectConfig


@dataclass
class PipelineConfig:
    """Attributes:
    output_dir: the run directory; every artifact of every stage goes under it.
    collect: the expert-data stage (its `root` is set to <output_dir>/data).
    """

    output_dir: str = "runs/quickstart"
    collect: CollectConfig = field(default_factory=CollectConfig)


def _stage_done(record: Path, config: dict) -> bool:
    as_saved = json.loads(json.dumps(config))  # tuples come back from JSON as lists
    return record.is_file() and json.loads(record.read_text())["config"] == as_saved


def _write_record(record: Path, config: dict, wall_s: float) -> None:
    record.parent.mkdir(parents=True, exist_ok=True)
    tmp = record.with_suffix(".tmp")
    tmp.write_text(json.dumps({"config": config, "wall_s": wall_s}, indent=2))
    tmp.replace(record)


def run_pipeline(config: PipelineConfig) -> dict:
    from embodied.data.record import collect
    from embodied.data.source import DatasetConfig, open_metadata
    from embodied.data.summary import format_summary, summarize

    out = Path(config.output_dir)
    data_root = out / "data"
    collect_config = CollectConfig(**{**to_dict(config.collect), "root": str(data_root)})
    record = out / "stages" / "collect.json"
    wall: dict[str, float] = {}
    if _stage_done(record, to_dict(collect_config)) and data_root.exists():
        print(f"collect: done earlier, reusing {data_root}")
    else:
        shutil.rmtree(data_root, ignore_errors=True)  # its config changed, or it never finished
        start = time.perf_counter()
        collect(collect_config)
        wall["collect"] = time.perf_counter() - start
        _write_record(record, to_dict(collect_config), wall["collect"])
    summary = summarize(open_metadata(DatasetConfig(root=str(data_root))))
    print(format_summary(summary))
    return {"wall_s": wall, "dataset": summary}
