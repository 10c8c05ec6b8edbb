"""Checking a local LeRobot dataset's files before LeRobot reads them.

LeRobot trusts its files: a truncated parquet or a garbled info.json ends in pyarrow's or
json's traceback, which names no file. These checks read what is cheap to read (the JSON
files whole, parquet footers and schemas, not their rows) so that a corrupt dataset is one
line naming the file and the problem. Videos are checked as they are decoded
(`embodied.data.cache`), the only time they are read whole.
"""

from pathlib import Path
from typing import Any

from embodied.files import read_json
from embodied.types import UserInputError

# info.json fields LeRobot's metadata needs, and their JSON types
INFO_FIELDS = {
    "codebase_version": str,
    "fps": (int, float),
    "features": dict,
    "total_episodes": int,
    "data_path": str,
}
NUMERIC_DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "bool")


class DatasetError(UserInputError):
    """A dataset that is missing, unfinished, corrupt, or does not fit what a stage needs."""


def read_info(root: Path) -> dict:
    """meta/info.json, with the fields LeRobot reads present and of the right type."""
    path = root / "meta" / "info.json"
    info = read_json(path, DatasetError)
    for name, kind in INFO_FIELDS.items():
        if not isinstance(info.get(name), kind):
            raise DatasetError(f"{path} is corrupt: {name!r} is {info.get(name)!r}")
    for key, feature in info["features"].items():
        shape = feature.get("shape") if isinstance(feature, dict) else None
        ok = isinstance(shape, list) and all(isinstance(n, int) for n in shape)
        if not ok or not isinstance(feature.get("dtype"), str):
            raise DatasetError(f"{path} is corrupt: feature {key!r} is {feature!r}")
    return info


def check_dataset_files(root: Path, info: dict) -> None:
    """Every metadata file and every parquet footer reads, and the parquet columns that
    must hold numbers do."""
    stats = root / "meta" / "stats.json"
    if stats.is_file():
        for key, values in read_json(stats, DatasetError).items():
            if not isinstance(values, dict) or not all(map(_numbers, values.values())):
                raise DatasetError(f"{stats} is corrupt: the statistics of {key!r} are not numbers")
    numeric = {k for k, f in info["features"].items() if f["dtype"] in NUMERIC_DTYPES}
    for path in sorted((root / "meta").rglob("*.parquet")):
        _check_columns(path, _schema(path), set())
    for path in sorted((root / "data").rglob("*.parquet")):
        schema = _schema(path)
        missing = sorted(numeric - set(schema.names))
        if missing:
            raise DatasetError(f"{path} lacks the columns {missing} that info.json lists")
        _check_columns(path, schema, numeric)


def _check_columns(path: Path, schema: Any, numeric: set[str]) -> None:
    """Indices, timestamps and the `numeric` features hold numbers (a dataset's row and
    episode bookkeeping is all integers and seconds)."""
    for field in schema:
        counted = field.name == "index" or field.name.endswith(("_index", "timestamp"))
        if (counted or field.name in numeric) and not _is_numeric(field.type):
            raise DatasetError(f"{path} is corrupt: column {field.name!r} holds {field.type}, "
                               "not numbers")  # fmt: skip


def _numbers(value: Any) -> bool:
    """A number, or a (nested) list of numbers."""
    if isinstance(value, list):
        return all(map(_numbers, value))
    return isinstance(value, int | float)  # bool too: the statistics of done flags


def _schema(path: Path) -> Any:
    """The parquet file's schema, read from its footer."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_schema(path)
    except (pa.ArrowException, OSError) as err:
        raise DatasetError(f"{path} is corrupt (not a readable parquet file: {err})") from None


def _is_numeric(kind: Any) -> bool:
    import pyarrow as pa

    while pa.types.is_list(kind) or pa.types.is_fixed_size_list(kind):
        kind = kind.value_type
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
