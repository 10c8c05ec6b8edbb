"""The world-model families, by `type` name, and loading any family's checkpoint."""

from pathlib import Path

from world_models.base import WorldModel, WorldModelConfig, load_folder
from world_models.latent_conv.modeling_latent_conv import LatentConvWorldModel

FAMILIES: dict[str, type[WorldModel]] = {
    LatentConvWorldModel.config_class.type: LatentConvWorldModel
}


def build(config: WorldModelConfig) -> WorldModel:
    return FAMILIES[config.type](config)


def load_world_model(path: str | Path, device: str = "cpu") -> WorldModel:
    """A world model from its checkpoint folder, weights loaded strictly, in eval mode."""
    return load_folder(path, FAMILIES, device)
