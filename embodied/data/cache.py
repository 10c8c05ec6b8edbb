"""A zarr cache of a LeRobot dataset's decoded frames and numeric columns.

Random access into AV1 video is what makes `LeRobotDataset` slow for training (about 100
samples/s here): every sample seeks and decodes. The cache decodes each video file once,
front to back, and stores frames as uint8 arrays in zarr; numeric columns are stored beside
them. A cache is named by a fingerprint of the dataset's files (names, sizes, modification
times), so a changed dataset gets a new cache and stale ones are removed. It is written to a
temporary name and renamed when complete, so a crash never leaves a cache that looks whole.

Frames can be cached at the size a model reads (`frame_size`, e.g. the VLA's `image_size`):
they are resized as they are decoded, a block at a time, with the same resampling the
policy's processor applies, so building and holding a cache of 480x640 arm cameras costs
what the model's resolution costs, not the cameras'.
"""

import hashlib
import io
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from embodied.data.integrity import DatasetError

CACHE_FORMAT = 2  # 2: the attributes list every file written, with its size
CHUNK_FRAMES = 64
FrameSize = tuple[int, int] | None  # (height, width) of cached frames; None = as recorded


def default_cache_dir() -> Path:
    return Path(os.environ.get("EMBODIED_CACHE_DIR", Path.home() / ".cache/embodied/frames"))


def fingerprint(root: Path) -> str:
    """Changes whenever a file of the dataset is added, removed, resized or rewritten."""
    digest = hashlib.sha256(f"format={CACHE_FORMAT}".encode())
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(("meta/", "data/", "videos/")):
            stat = path.stat()
            digest.update(f"{rel}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:20]


def _cache_name(meta: Any) -> str:
    """One name per dataset location, so two datasets never evict each other's cache."""
    where = hashlib.sha256(str(Path(meta.root).resolve()).encode()).hexdigest()[:8]
    return f"{meta.repo_id.replace('/', '--')}-{where}"


def cache_path(meta: Any, cache_dir: Path | None = None, frame_size: FrameSize = None) -> Path:
    folder = cache_dir or default_cache_dir()
    size = "" if frame_size is None else f"-{frame_size[0]}x{frame_size[1]}"
    return folder / f"{_cache_name(meta)}-{fingerprint(Path(meta.root))}{size}.zarr"


def _numeric_columns(meta: Any) -> dict[str, np.ndarray]:
    """Every non-image column of the dataset, rows ordered by the global `index`."""
    import pyarrow.parquet as pq

    keys = [k for k, ft in meta.features.items() if ft["dtype"] not in ("image", "video")]
    files = sorted(Path(meta.root, "data").rglob("*.parquet"))
    tables = [pq.read_table(f, columns=keys) for f in files]
    columns = {k: np.concatenate([_to_numpy(t.column(k)) for t in tables]) for k in keys}
    order = np.argsort(columns["index"], kind="stable")
    return {k: v[order] for k, v in columns.items()}


def _to_numpy(column: Any) -> np.ndarray:
    array = column.combine_chunks()
    if hasattr(array, "flatten") and hasattr(array.type, "list_size"):  # fixed-size list
        return array.flatten().to_numpy(zero_copy_only=False).reshape(len(array), -1)
    return array.to_numpy(zero_copy_only=False)


def _decode_video(path: Path, frame_size: FrameSize) -> tuple[np.ndarray, np.ndarray, tuple]:
    """All frames of a video file, front to back, as (N, H, W, 3) uint8 (resized to
    `frame_size` a block at a time, so no more than a block is held at full size), their
    times, and the size they were recorded at."""
    import av

    blocks, block, times, recorded = [], [], [], None
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            recorded = recorded or (frame.height, frame.width)
            block.append(frame.to_ndarray(format="rgb24"))
            times.append(float(frame.pts * stream.time_base))
            if len(block) == CHUNK_FRAMES:
                blocks.append(_resized(np.stack(block), frame_size))
                block = []
    if block:
        blocks.append(_resized(np.stack(block), frame_size))
    if recorded is None:
        raise ValueError("it holds no frame")
    return np.concatenate(blocks), np.asarray(times), recorded


def _resized(frames: np.ndarray, frame_size: FrameSize) -> np.ndarray:
    """uint8 (N, H, W, 3) -> (N, *frame_size, 3), resampled as the VLA's processor does."""
    if frame_size is None or tuple(frames.shape[1:3]) == tuple(frame_size):
        return frames
    import torch

    from policies.vla.processor_vla import resize_images

    images = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div_(255.0)
    out = resize_images(images, tuple(frame_size)).mul_(255.0).round_()
    return out.to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def _video_frames(meta: Any, key: str, total: int, frame_size: FrameSize) -> np.ndarray:
    """Frames of video feature `key` for every dataset row, in `index` order."""
    out: np.ndarray | None = None
    decoded: dict[Path, tuple[np.ndarray, np.ndarray]] = {}
    for ep in meta.episodes:
        path = Path(meta.root) / meta.get_video_file_path(ep["episode_index"], key)
        if path not in decoded:
            decoded.clear()  # files are visited in order; keep one in memory
            if not path.is_file():
                raise DatasetError(f"video {path} of {key} is missing")
            decoded[path] = _checked_decode(path, meta.features[key]["shape"], frame_size)
        frames, times = decoded[path]
        start = ep[f"videos/{key}/from_timestamp"]
        length = ep["dataset_to_index"] - ep["dataset_from_index"]
        wanted = start + np.arange(length) / meta.fps
        nearest = np.searchsorted(times, wanted - 0.5 / meta.fps)
        nearest = np.clip(nearest, 0, len(times) - 1)
        if np.abs(times[nearest] - wanted).max() > 0.5 / meta.fps:
            raise DatasetError(f"{path} lacks frames of episode {ep['episode_index']} ({key})")
        if out is None:
            out = np.empty((total, *frames.shape[1:]), dtype=np.uint8)
        out[ep["dataset_from_index"] : ep["dataset_to_index"]] = frames[nearest]
    return out


def _checked_decode(path: Path, shape: list, frame_size: FrameSize) -> tuple:
    """`_decode_video`, with a file that does not decode, or holds frames of another size
    than info.json's (height, width, 3), a one-line DatasetError naming it."""
    import av

    try:
        frames, times, recorded = _decode_video(path, frame_size)
    except (av.FFmpegError, ValueError) as err:
        raise DatasetError(f"{path} does not decode ({err}); the dataset is corrupt") from None
    if list(recorded) != list(shape[:2]):
        raise DatasetError(f"{path} holds {recorded[0]}x{recorded[1]} (height x width) frames; "
                           f"info.json says {shape}")  # fmt: skip
    return frames, times


def _image_frames(meta: Any, key: str, frame_size: FrameSize) -> np.ndarray:
    """Frames of an image feature stored as PNG/JPEG bytes inside the parquet files."""
    import pyarrow.parquet as pq
    from PIL import Image

    rows = []
    for f in sorted(Path(meta.root, "data").rglob("*.parquet")):
        table = pq.read_table(f, columns=[key, "index"])
        images = table.column(key).to_pylist()
        for index, image in zip(table.column("index").to_pylist(), images, strict=True):
            frame = np.asarray(Image.open(io.BytesIO(image["bytes"])).convert("RGB"))
            rows.append((index, _resized(frame[None], frame_size)[0]))
    rows.sort(key=lambda r: r[0])
    return np.stack([r[1] for r in rows])


def build_cache(meta: Any, path: Path, frame_size: FrameSize = None) -> Path:
    """Decode the whole dataset into a zarr store at `path` (atomically)."""
    import zarr
    from tqdm import tqdm

    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    group = zarr.open_group(str(tmp), mode="w")
    columns = _numeric_columns(meta)
    total = len(columns["index"])
    for key, values in columns.items():
        group.create_array(key, data=values, chunks=(max(1, min(total, 4096)), *values.shape[1:]))
    for key in tqdm(meta.camera_keys, desc=f"caching frames of {meta.repo_id}", unit="camera"):
        if key in meta.video_keys:
            frames = _video_frames(meta, key, total, frame_size)
        else:
            frames = _image_frames(meta, key, frame_size)
        group.create_array(key, data=frames, chunks=(CHUNK_FRAMES, *frames.shape[1:]))
    group.attrs.update({"format": CACHE_FORMAT, "repo_id": meta.repo_id, "frames": total,
                        "files": _files(tmp)})  # fmt: skip
    name = re.compile(re.escape(_cache_name(meta)) + r"-([0-9a-f]{20})(-\d+x\d+)?\.zarr")
    current = name.fullmatch(path.name).group(1)  # cache_path's fingerprint, not walked again
    for other in path.parent.iterdir():
        found = name.fullmatch(other.name)
        if found and found.group(1) != current:  # caches of earlier versions of this dataset
            shutil.rmtree(other, ignore_errors=True)
    tmp.rename(path)
    return path


def _files(store: Path) -> dict[str, int]:
    """Every file of a zarr store but its root metadata (which holds this list), by size."""
    paths = (p for p in sorted(store.rglob("*")) if p.is_file())
    return {p.relative_to(store).as_posix(): p.stat().st_size for p in paths} | {"zarr.json": -1}


def load_cache(
    meta: Any,
    cache_dir: Path | None = None,
    max_memory_mb: int = 4096,
    frame_size: FrameSize = None,
) -> dict:
    """The cached arrays of `meta`'s dataset (frames at `frame_size`), building the cache
    first if needed, and rebuilding a cache that is corrupt rather than trusting it.

    Arrays that fit in `max_memory_mb` together are read into memory; larger datasets are
    served from zarr (slower, chunked reads). A cache is corrupt when its files are not
    those it was written with (missing, truncated, emptied) or, read into memory, when a
    chunk does not decode; a larger one is read chunk by chunk as it is served, so a chunk
    overwritten in place at the same size would fail there.
    """
    recorded = {tuple(meta.features[k]["shape"][:2]) for k in meta.camera_keys}
    if frame_size is not None and recorded == {tuple(frame_size)}:
        frame_size = None  # every camera is recorded at that size: share the one cache
    path = cache_path(meta, cache_dir, frame_size)
    if path.exists():
        try:
            return _read_cache(path, max_memory_mb)
        except Exception as err:  # derived data: whatever is wrong with it, rebuild it
            problem = " ".join(f"{type(err).__name__}: {err}".split())[:200]
            print(f"frame cache {path} is corrupt ({problem}); rebuilding it", file=sys.stderr)
            shutil.rmtree(path, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    build_cache(meta, path, frame_size)
    return _read_cache(path, max_memory_mb)


def _read_cache(path: Path, max_memory_mb: int) -> dict:
    import zarr

    group = zarr.open_group(str(path), mode="r")
    if group.attrs.get("format") != CACHE_FORMAT:
        raise ValueError(f"a cache of format {group.attrs.get('format')}, not {CACHE_FORMAT}")
    written, found = group.attrs.get("files", {}), _files(path)
    changed = sorted(set(written.items()) ^ set(found.items()))
    if changed:
        raise ValueError(f"{changed[0][0]} is not as written")
    arrays = {key: group[key] for key in group.array_keys()}
    if any(a.shape[0] != group.attrs["frames"] for a in arrays.values()):
        raise ValueError("arrays of different lengths")
    nbytes = sum(a.nbytes for a in arrays.values())
    if nbytes <= max_memory_mb * 2**20:
        arrays = {k: a[...] for k, a in arrays.items()}
    return arrays
