"""Scripted experts, one per task, all driven the same way (`ScriptedExpert.act`)."""

from envs.experts.base import ExpertConfig, ScriptedExpert
from envs.experts.door import DoorExpert
from envs.experts.episode import Frame, episode_frames, expert_frames
from envs.experts.manipulation import (
    CubesExpert,
    LiftExpert,
    PickPlaceCanExpert,
    StackExpert,
)

EXPERTS: dict[str, type[ScriptedExpert]] = {
    "lift": LiftExpert,
    "stack": StackExpert,
    "pick_place_can": PickPlaceCanExpert,
    "door": DoorExpert,
    "lang_cubes": CubesExpert,
}


__all__ = ["EXPERTS", "ExpertConfig", "Frame", "ScriptedExpert", "episode_frames", "expert_frames"]
