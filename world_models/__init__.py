"""Action-conditioned video world models: one folder per family, one interface
(`world_models.base.WorldModel`), and the batched world-model environment (`world_models.env`).
Nothing here imports the runtime, the policies or the simulators."""
