"""The embodied VLA: camera images + robot state + instruction -> a chunk of future actions.

Three modules, LeRobot's layout: `configuration_vla` (the config, registered with LeRobot as
``embodied_vla``), `modeling_vla` (the network and the `PreTrainedPolicy`), `processor_vla`
(normalization pipelines).
"""
