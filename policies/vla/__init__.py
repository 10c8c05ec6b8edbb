"""The embodied VLA: camera images + robot state + instruction -> a chunk of future actions.

Three modules, LeRobot's layout: `configuration_vla` (the config, registered with LeRobot as
``embodied_vla``), `modeling_vla` (the network and the `PreTrainedPolicy`), `processor_vla`
(normalization pipelines). Importing the package registers both names LeRobot looks up when
it loads a checkpoint: the policy type and the processor step `embodied_resize_images`.
"""

from policies.vla import configuration_vla, processor_vla  # noqa: F401  (registrations)
