"""Our files on disk: written so that a crash never leaves half of one under its final name,
and read so that a corrupt one is a one-line error naming it, never a traceback."""

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from embodied.types import UserInputError


@contextmanager
def folder_written_atomically(path: Path) -> Iterator[Path]:
    """Yield `<path>.tmp` (emptied first) to write into; when the block finishes, it
    replaces `path`. If the block raises, `path` is left as it was."""
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    yield tmp
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)


def write_text_atomically(path: Path, text: str) -> None:
    """Write `text` to `<path>.tmp`, then rename it over `path`: a reader sees the old file
    or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def read_json(path: Path, error: type[Exception] = UserInputError) -> dict:
    """The JSON object in `path`. A file that is missing, not UTF-8, not JSON or not an
    object raises `error` with one line naming the file and the problem."""
    try:
        value = json.loads(Path(path).read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise error(f"{path} is missing") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise error(f"{path} is corrupt (not JSON: {err})") from None
    if not isinstance(value, dict):
        raise error(f"{path} is corrupt (a JSON {type(value).__name__}, not an object)")
    return value
