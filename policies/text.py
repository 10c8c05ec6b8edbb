"""Instructions as byte tokens: no vocabulary file, nothing to download, any language."""

import torch
from torch import Tensor

PAD = 0
VOCAB_SIZE = 257  # bytes 0..255 shifted by one, and padding


def encode_instructions(texts: list[str], max_len: int) -> tuple[Tensor, Tensor]:
    """UTF-8 bytes of each lower-cased instruction -> tokens (B, L) and a padding mask (B, L).

    Longer instructions are cut at `max_len` bytes. An empty instruction (LeRobot's pusht
    evaluation passes "") is all padding, which the model handles.
    """
    tokens = torch.full((len(texts), max_len), PAD, dtype=torch.long)
    for i, text in enumerate(texts):
        data = text.strip().lower().encode("utf-8")[:max_len]
        if data:
            tokens[i, : len(data)] = torch.tensor(list(data), dtype=torch.long) + 1
    return tokens, tokens == PAD
