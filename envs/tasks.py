"""The registry of simulated tasks: which robosuite scene, which instructions, what success means.

A task is data, not a class: `TaskSpec` names the robosuite environment, the instructions a
policy may be given, and a success judge `(robosuite_env, instruction) -> bool`. Tasks whose
scene admits several goals (``lang_cubes``) judge success per instruction, so a policy must
read the text to succeed. ``lang_cubes`` asks for one of two cubes and nothing else: with the
same motion for both goals, success with a wrong instruction measures whether the policy reads
the text, not whether it can also stack (that is the ``stack`` task).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embodied.types import UserInputError

Judge = Callable[[Any, str], bool]

LIFT_MARGIN = 0.02  # an object counts as lifted once its bottom is this far above the table


@dataclass(frozen=True)
class TaskSpec:
    """One simulated task.

    Attributes:
        name: our task name, used on the command line (`--task lift`).
        robosuite_env: the robosuite environment class name it is built on.
        instructions: the instructions this scene understands; the first is the default.
        horizon: control steps (20 Hz) before an episode is truncated.
        judge: success given the live robosuite env and the episode's instruction.
        env_kwargs: extra keyword arguments for `robosuite.make`.
    """

    name: str
    robosuite_env: str
    instructions: tuple[str, ...]
    horizon: int
    judge: Judge
    env_kwargs: dict = field(default_factory=dict)


def _robosuite_success(env: Any, instruction: str) -> bool:
    return bool(env._check_success())


def _lifted(env: Any, body_id: int, half_size: float) -> bool:
    bottom = env.sim.data.body_xpos[body_id][2] - half_size
    return bool(bottom > env.table_offset[2] + LIFT_MARGIN)


def _cubes_success(env: Any, instruction: str) -> bool:
    """Success in the two-cube scene, judged by what the instruction asked for."""
    if instruction == "lift the red cube":
        return _lifted(env, env.cubeA_body_id, env.cubeA.size[2])
    if instruction == "lift the green cube":
        return _lifted(env, env.cubeB_body_id, env.cubeB.size[2])
    raise KeyError(f"lang_cubes does not understand the instruction {instruction!r}")


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in [
        TaskSpec("lift", "Lift", ("lift the red cube",), 150, _robosuite_success),
        TaskSpec(
            "stack", "Stack", ("stack the red cube on the green cube",), 250, _robosuite_success
        ),
        TaskSpec(
            "pick_place_can",
            "PickPlaceCan",
            ("put the can into its bin",),
            300,
            _robosuite_success,
        ),
        TaskSpec("door", "Door", ("open the door",), 300, _robosuite_success),
        TaskSpec(
            "lang_cubes",
            "Stack",
            ("lift the red cube", "lift the green cube"),
            150,
            _cubes_success,
        ),
    ]
}


class UnknownTaskError(UserInputError, KeyError):
    """A task name we do not have (a KeyError too, for lookups that expect one)."""

    def __str__(self) -> str:
        return str(self.args[0])


def get_task(name: str) -> TaskSpec:
    """Look a task up by name, with an error that lists the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        known = ", ".join(sorted(TASKS))
        raise UnknownTaskError(f"unknown task {name!r}; known tasks: {known}") from None


def check_instruction(spec: TaskSpec, instruction: str) -> str:
    if instruction not in spec.instructions:
        raise UserInputError(
            f"task {spec.name!r} does not understand the instruction {instruction!r}; "
            f"it knows: {list(spec.instructions)}"
        )
    return instruction


def parse_tasks(text: str) -> list[TaskSpec]:
    """`"lift,stack"` -> specs, failing on the first unknown name before any work starts."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError("no task given")
    return [get_task(n) for n in names]


def sample_instruction(spec: TaskSpec, rng: np.random.Generator) -> str:
    return spec.instructions[int(rng.integers(len(spec.instructions)))]
