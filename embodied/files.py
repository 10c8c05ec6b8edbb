"""Writing folders so that a crash never leaves half of one under its final name."""

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
