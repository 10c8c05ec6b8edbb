"""References to checkpoints, the config sections every command that reads one shares.

They live here, not in the command that writes or evaluates the checkpoint, so a library
module that needs one (RL, the pipeline) never imports a command module.
"""

from dataclasses import dataclass


@dataclass
class PolicyRef:
    """Attributes:
    path: a policy checkpoint folder (config.json, model.safetensors, processor files).
    """

    path: str = ""


@dataclass
class WorldModelRef:
    """Attributes:
    path: a world-model checkpoint folder (config.json, model.safetensors).
    """

    path: str = ""


@dataclass
class RewardModelRef:
    """Attributes:
    path: a reward-model checkpoint folder (config.json with its threshold,
        model.safetensors); empty: the world model's own success head judges.
    """

    path: str = ""
