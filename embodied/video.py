"""Writing frames to mp4 (H.264 through PyAV, which ships its own FFmpeg)."""

from pathlib import Path

import numpy as np


def write_mp4(path: Path, frames: list[np.ndarray], fps: int = 20) -> None:
    """uint8 (H, W, 3) frames -> `path`, written to a temporary name and then renamed."""
    import av

    if not frames:
        raise ValueError(f"no frames to write to {path}")
    height, width = frames[0].shape[:2]
    tmp = path.with_name(path.stem + ".tmp.mp4")
    with av.open(str(tmp), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = width + width % 2, height + height % 2
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            padded = np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)))
            container.mux(stream.encode(av.VideoFrame.from_ndarray(padded, format="rgb24")))
        container.mux(stream.encode())
    tmp.replace(path)
