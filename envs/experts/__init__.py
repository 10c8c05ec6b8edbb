"""Scripted experts, one per task, all driven the same way (`ScriptedExpert.act`)."""

import numpy as np

from envs.experts.base import ExpertConfig, ScriptedExpert
from envs.experts.door import DoorExpert
from envs.experts.manipulation import (
    CubesExpert,
    LiftExpert,
    PickPlaceCanExpert,
    StackExpert,
)
from envs.robosuite_env import RobosuiteEnv

EXPERTS: dict[str, type[ScriptedExpert]] = {
    "lift": LiftExpert,
    "stack": StackExpert,
    "pick_place_can": PickPlaceCanExpert,
    "door": DoorExpert,
    "lang_cubes": CubesExpert,
}


def make_expert(
    env: RobosuiteEnv, config: ExpertConfig = ExpertConfig(), rng: np.random.Generator | None = None
) -> ScriptedExpert:
    """The expert for `env`'s task, for the episode `env` was just reset to."""
    return EXPERTS[env.spec_task.name](env, config, rng or np.random.default_rng())


__all__ = ["EXPERTS", "ExpertConfig", "ScriptedExpert", "make_expert"]
