"""Vision and language encoders of the VLA: from scratch by default, or pretrained.

Every encoder maps its input to tokens of the fusion transformer's width `dim`:

- vision: images (B, 3, H, W) in [0, 1] -> (B, grid * grid, dim)
- text: B instruction strings -> tokens (B, L, dim) and a padding mask (B, L)

From scratch (the default, nothing to download): a small CNN per camera, and the UTF-8 bytes
of the instruction (no vocabulary file, any language). Pretrained: any Hugging Face model a
`transformers.AutoModel` loads, from a local folder or a Hub id when online (a ViT, DINOv2,
SigLIP vision tower or ResNet for images; a BERT-like model for text), followed by a learned
projection to `dim`. Its weights are copied into the policy's checkpoint, but the folder (or
Hub id) must stay reachable to rebuild its architecture and tokenizer.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from embodied.types import BYTE_VOCAB, byte_tokens


class ConvVision(nn.Module):
    """A from-scratch CNN; any input size works (the last stage is pooled to the grid)."""

    def __init__(self, channels: tuple[int, ...], grid: int, dim: int):
        super().__init__()
        layers, previous = [], 3
        for width in channels:
            layers += [
                nn.Conv2d(previous, width, 3, stride=2, padding=1),
                nn.GroupNorm(min(8, width), width),
                nn.GELU(),
            ]
            previous = width
        self.conv = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(grid), nn.Conv2d(previous, dim, 1))
        self.position = nn.Parameter(torch.zeros(grid * grid, dim))

    def forward(self, image: Tensor) -> Tensor:
        features = self.conv((image - 0.5) / 0.25)  # (B, dim, grid, grid)
        return features.flatten(2).transpose(1, 2) + self.position


class ByteText(nn.Module):
    """Learned embeddings of the instruction's bytes, with learned positions."""

    def __init__(self, max_len: int, dim: int):
        super().__init__()
        self.max_len = max_len
        self.embed = nn.Embedding(BYTE_VOCAB, dim)
        self.position = nn.Parameter(torch.zeros(max_len, dim))

    def forward(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        tokens, pad = (
            torch.from_numpy(x).to(self.position.device) for x in byte_tokens(texts, self.max_len)
        )
        return self.embed(tokens) + self.position, pad


def _load_pretrained(name: str, freeze: bool) -> nn.Module:
    from transformers import AutoModel

    try:
        model = AutoModel.from_pretrained(name)
    except (OSError, ValueError) as err:  # a missing folder reads as a malformed Hub id
        raise ValueError(f"cannot load the pretrained encoder {name!r}: {err}") from None
    model.requires_grad_(not freeze)
    return model


class PretrainedVision(nn.Module):
    """A Hugging Face image model: its last hidden state pooled to grid x grid, projected.

    Images are resized to the model's input size and normalized with its image processor's
    mean and std (ImageNet's when the folder has none).
    """

    def __init__(self, name: str, grid: int, dim: int, freeze: bool):
        super().__init__()
        from transformers import AutoImageProcessor

        self.model = _load_pretrained(name, freeze)
        config = getattr(self.model.config, "vision_config", self.model.config)
        size = getattr(config, "image_size", None)
        self.size = (size, size) if isinstance(size, int) else None
        try:
            processor = AutoImageProcessor.from_pretrained(name)
            mean, std = processor.image_mean, processor.image_std
        except (OSError, ValueError, AttributeError):
            mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        width = getattr(config, "hidden_size", None) or config.hidden_sizes[-1]
        self.grid = grid
        self.project = nn.Linear(width, dim)
        self.position = nn.Parameter(torch.zeros(grid * grid, dim))

    def forward(self, image: Tensor) -> Tensor:
        if self.size is not None and tuple(image.shape[-2:]) != self.size:
            image = F.interpolate(image, size=self.size, mode="bilinear", align_corners=False)
        hidden = self.model(pixel_values=(image - self.mean) / self.std).last_hidden_state
        if hidden.dim() == 4:  # CNN feature map (B, C, h, w)
            hidden = F.adaptive_avg_pool2d(hidden, self.grid).flatten(2).transpose(1, 2)
        else:  # transformer tokens (B, N, C)
            hidden = F.adaptive_avg_pool1d(hidden.transpose(1, 2), self.grid**2).transpose(1, 2)
        return self.project(hidden) + self.position


class PretrainedText(nn.Module):
    """A Hugging Face text model and its tokenizer: last hidden state, projected."""

    def __init__(self, name: str, max_len: int, dim: int, freeze: bool):
        super().__init__()
        from transformers import AutoTokenizer

        self.model = _load_pretrained(name, freeze)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(name)
        except (OSError, ValueError) as err:
            raise ValueError(f"the text encoder {name!r} has no usable tokenizer: {err}") from None
        self.max_len = max_len
        self.project = nn.Linear(self.model.config.hidden_size, dim)

    def forward(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        device = self.project.weight.device
        encoded = self.tokenizer(
            [t.strip() for t in texts],
            padding="max_length",
            truncation=True,
            max_length=self.max_len,
            return_tensors="pt",
        ).to(device)
        hidden = self.model(
            input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"]
        ).last_hidden_state
        return self.project(hidden), encoded["attention_mask"] == 0


def make_vision(source: str, channels: tuple[int, ...], grid: int, dim: int, freeze: bool):
    if source:
        return PretrainedVision(source, grid, dim, freeze)
    return ConvVision(channels, grid, dim)


def make_text(source: str, max_len: int, dim: int, freeze: bool):
    if source:
        return PretrainedText(source, max_len, dim, freeze)
    return ByteText(max_len, dim)
