"""LeRobot imports every installed distribution named `lerobot_robot_*` at start-up
(`register_third_party_plugins`). Importing this package registers robot type
``embodied_sim`` (`EmbodiedSimConfig`); LeRobot then finds the `EmbodiedSim` robot class
here, by the config's name without `Config`."""

from lerobot_robot_embodied_sim.config_embodied_sim import EmbodiedSimConfig
from lerobot_robot_embodied_sim.embodied_sim import EmbodiedSim

__all__ = ["EmbodiedSim", "EmbodiedSimConfig"]
