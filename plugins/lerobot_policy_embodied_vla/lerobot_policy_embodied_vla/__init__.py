"""LeRobot imports every installed distribution named `lerobot_policy_*` at start-up
(`register_third_party_plugins`); importing the config registers policy type
``embodied_vla`` (and, through `policies.vla`, the processor step its saved pipelines name),
and LeRobot then finds `modeling_vla.VLAPolicy` and
`processor_vla.make_embodied_vla_pre_post_processors` next to it by name."""

from policies.vla.configuration_vla import VLAConfig

__all__ = ["VLAConfig"]
