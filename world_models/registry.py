"""The world-model families, by `type` name, and loading any family's checkpoint."""

from pathlib import Path

from world_models.base import (
    WEIGHTS_FILE,
    WorldModel,
    WorldModelCheckpointError,
    WorldModelConfig,
    read_config,
)
from world_models.latent_conv.modeling_latent_conv import LatentConvWorldModel

FAMILIES: dict[str, type[WorldModel]] = {
    LatentConvWorldModel.config_class.type: LatentConvWorldModel
}


def build(config: WorldModelConfig) -> WorldModel:
    return FAMILIES[config.type](config)


def load_world_model(path: str | Path, device: str = "cpu") -> WorldModel:
    """A world model from its checkpoint folder, weights loaded strictly, in eval mode."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(path)
    model = build(read_config(folder, FAMILIES))
    try:
        model.load_state_dict(load_file(folder / WEIGHTS_FILE, device=device), strict=True)
    except (SafetensorError, RuntimeError) as err:
        raise WorldModelCheckpointError(f"{folder}/{WEIGHTS_FILE} does not load: {err}") from None
    return model.to(device).eval()
