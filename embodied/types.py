"""Names and small records every part of the framework agrees on.

Key names are LeRobot's, so a dataset recorded here opens in LeRobot's tools and a LeRobot
dataset from elsewhere trains here unchanged. This module imports nothing heavy: `envs/`,
`policies/` and `world_models/` may all depend on it.
"""

IMAGE_PREFIX = "observation.images."
STATE = "observation.state"
ACTION = "action"
TASK = "task"
REWARD = "next.reward"
DONE = "next.done"
SUCCESS = "next.success"
PAD_SUFFIX = "_is_pad"


def image_key(camera: str) -> str:
    """`observation.images.<camera>`: uint8 HWC in envs and on disk, float CHW in batches."""
    return IMAGE_PREFIX + camera


def camera_of(key: str) -> str:
    """Inverse of `image_key`."""
    if not key.startswith(IMAGE_PREFIX):
        raise ValueError(f"{key!r} is not an image key (expected {IMAGE_PREFIX}<camera>)")
    return key[len(IMAGE_PREFIX) :]
