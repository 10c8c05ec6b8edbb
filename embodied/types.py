"""Names and small records every part of the framework agrees on.

Key names are LeRobot's, so a dataset recorded here opens in LeRobot's tools and a LeRobot
dataset from elsewhere trains here unchanged. This module imports nothing heavy: `envs/`,
`policies/` and `world_models/` may all depend on it.
"""


class UserInputError(ValueError):
    """Input a user gave (a flag, a name, a file) that cannot work. The command line prints
    its message as one line, without a traceback; the message names what and where."""


IMAGE_PREFIX = "observation.images."
STATE = "observation.state"
ACTION = "action"
TASK = "task"
REWARD = "next.reward"
DONE = "next.done"
SUCCESS = "next.success"
PAD_SUFFIX = "_is_pad"


def feature_names(feature: dict) -> list[str]:
    """A dataset feature's per-dimension names as a flat list (LeRobot writes a list, or a
    dict such as {"motors": [...]}); empty when the dataset names none."""
    names = feature.get("names") or []
    if isinstance(names, dict):
        names = [n for group in names.values() for n in (group or [])]
    return [str(n) for n in names]


def image_key(camera: str) -> str:
    """`observation.images.<camera>`: uint8 HWC in envs and on disk, float CHW in batches."""
    return IMAGE_PREFIX + camera


def camera_of(key: str) -> str:
    """Inverse of `image_key`."""
    if not key.startswith(IMAGE_PREFIX):
        raise ValueError(f"{key!r} is not an image key (expected {IMAGE_PREFIX}<camera>)")
    return key[len(IMAGE_PREFIX) :]


BYTE_VOCAB = 257  # the token ids byte_tokens produces: bytes 0..255 shifted by one, 0 = padding


def byte_tokens(texts: list[str], max_len: int):
    """Instructions as UTF-8 byte tokens, a vocabulary-free text encoding shared by models:
    (tokens int64 (B, L): byte + 1, 0 is padding; pad bool (B, L)). Lower-cased, stripped and
    cut at `max_len` bytes; an empty instruction (LeRobot's pusht evaluation passes "") is all
    padding."""
    import numpy as np

    tokens = np.zeros((len(texts), max_len), dtype=np.int64)
    for i, text in enumerate(texts):
        data = text.strip().lower().encode("utf-8")[:max_len]
        tokens[i, : len(data)] = np.frombuffer(data, dtype=np.uint8).astype(np.int64) + 1
    return tokens, tokens == 0
