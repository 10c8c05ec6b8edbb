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
