"""robosuite's classes with their Python overhead taken out, computing bit for bit what
robosuite computes (tests step both side by side and compare every observation and the
MuJoCo state).

Closed-loop evaluation spends most of a control step in robosuite's Python, not in MuJoCo:
at 20 Hz control and 500 Hz physics the arm's controller runs 25 times a step, and each run
looks sites up by name, asks MuJoCo for the same site Jacobian three times over, and reads
every array through a property that forwards to MuJoCo's. The subclasses here look the ids up
once per simulation and ask once, then do robosuite's arithmetic, in robosuite's order, with
robosuite's own numba kernels. Only the common case is taken over (one reference site, no
interpolator, goals in the base frame: the BASIC Panda of every task here); anything else
keeps robosuite's class.

Imported by `envs.robosuite_env` when it builds an env, never at import time: it imports
robosuite.
"""

import functools
from typing import Any

import mujoco
import numpy as np
from robosuite.controllers.composite.composite_controller import CompositeController
from robosuite.controllers.parts.arm.osc import OperationalSpaceController
from robosuite.utils.control_utils import nullspace_torques, opspace_matrices, orientation_error

from envs.rendering import with_fast_visuals


@functools.cache
def lean_env_class(base: type, fast_render: bool) -> type:
    """robosuite's env class with two changes that leave its physics and every named
    observation as robosuite computes them:

    - observations are returned by name only: robosuite also concatenates them per modality
      (`robot0_proprio-state`, `object-state`) on every step, which nothing here reads;
    - with `fast_render`, the model XML always carries the fast visual settings. robosuite
      feeds every (re)built model through `edit_model_xml`, including the rebuilds of hard
      resets, so the settings cannot be lost.
    """

    def edit_model_xml(self, xml_str: str) -> str:
        return with_fast_visuals(base.edit_model_xml(self, xml_str))

    def _get_observations(self, force_update: bool = False) -> dict:
        if force_update:
            self._update_observables(force=True)
        return {name: o.obs for name, o in self._observables.items()
                if o.is_enabled() and o.is_active()}  # fmt: skip

    # __module__ named: robosuite's metaclass would otherwise stamp its own
    attrs: dict[str, Any] = {"_get_observations": _get_observations, "__module__": __name__}
    if fast_render:
        attrs["edit_model_xml"] = edit_model_xml
    # a name of its own: robosuite registers every env class by name
    return type(f"{'Fast' if fast_render else 'Lean'}{base.__name__}", (base,), attrs)


def make_robots_lean(env: Any) -> None:
    """Swap each robot of a freshly built robosuite env for its lean class, in place."""
    for robot in env.robots:
        robot.__class__ = _lean_robot_class(type(robot), robot.action_dim)
        _make_controllers_lean(robot)


def restore_robosuite_classes(env: Any) -> None:
    """Undo `lean_env_class` and `make_robots_lean` on a built env, in place: robosuite's
    own classes, to compare with (tests, benchmarks). The model already built keeps its
    visual settings."""
    for robot in env.robots:
        composite = robot.composite_controller
        for part in (robot, composite, *composite.part_controllers.values()):
            if type(part).__module__ == __name__:
                part.__class__ = type(part).__mro__[1]
    if type(env).__module__ == __name__:
        env.__class__ = type(env).__mro__[1]


@functools.cache
def _lean_robot_class(robot_class: type, action_dim: int) -> type:
    """A subclass of a robosuite robot whose action size is the constant it is, and whose
    controllers are lean.

    robosuite recomputes a robot's action size (concatenating its controllers' limits)
    three times per physics substep, 75 times a control step: about a tenth of a step's time
    in closed-loop evaluation. It depends only on the controller config, fixed when the env
    is built. The robot builds new controllers on every reset (`_load_controller`): they are
    made lean there.
    """

    def _load_controller(self):
        robot_class._load_controller(self)
        _make_controllers_lean(self)

    attrs = {"action_dim": property(lambda self: action_dim), "_load_controller": _load_controller,
             "__module__": __name__}  # fmt: skip
    return type(robot_class.__name__, (robot_class,), attrs)


def _make_controllers_lean(robot: Any) -> None:
    composite = robot.composite_controller
    for controller in composite.part_controllers.values():
        if type(controller) is OperationalSpaceController and _osc_is_plain(controller):
            controller.__class__ = LeanOSC
    arms = [composite.part_controllers[arm] for arm in composite.arms]
    if type(composite) is CompositeController and all(type(c) is LeanOSC for c in arms):
        composite.__class__ = LeanCompositeController


def _osc_is_plain(controller: OperationalSpaceController) -> bool:
    """The configuration `LeanOSC` takes over: the one robosuite's BASIC Panda uses."""
    return (
        controller.num_ref_sites == 1
        and controller.ref_name is not None
        and controller.interpolator_pos is None
        and controller.interpolator_ori is None
        and controller.input_ref_frame == "base"
    )


class _SiteIds:
    """The MuJoCo handles and the ids of the sites a controller reads every substep, looked
    up once per simulation (robosuite's reset can hand a controller a new one)."""

    def __init__(self, sim: Any, sites: list[str], qpos_index: list, qvel_index: list):
        self.sim = sim
        self.model, self.data = sim.model._model, sim.data._data
        self.ids = [sim.model.site_name2id(name) for name in sites]
        self.qpos, self.qvel = _as_slice(qpos_index), _as_slice(qvel_index)
        self.qvel_array = np.asarray(qvel_index)
        self.full_mass = np.ndarray((self.model.nv, self.model.nv), dtype=np.float64, order="C")

    def jacobians(self, site: int) -> tuple[np.ndarray, np.ndarray]:
        """The site's positional and rotational Jacobians, in one MuJoCo call (robosuite
        makes one per Jacobian, and again for each velocity)."""
        jacp, jacr = np.zeros((3, self.model.nv)), np.zeros((3, self.model.nv))
        mujoco.mj_jacSite(self.model, self.data, jacp, jacr, site)
        return jacp, jacr


def _as_slice(index: list) -> slice | np.ndarray:
    """A joint index list as the slice it is when contiguous (the arm's joints come first):
    the same elements, without NumPy converting the list on every read."""
    if list(index) == list(range(index[0], index[0] + len(index))):
        return slice(int(index[0]), int(index[0]) + len(index))
    return np.asarray(index)


class LeanCompositeController(CompositeController):
    """robosuite's composite controller reading each arm's base site by the id its (lean)
    arm controller has cached."""

    def get_controller_base_pose(self, controller_name):
        ids = self.part_controllers[controller_name].site_ids()
        data, center = ids.data, ids.ids[1]
        return np.array(data.site_xpos[center]), np.array(data.site_xmat[center].reshape([3, 3]))


class LeanOSC(OperationalSpaceController):
    """robosuite's operational-space controller, state read once per substep by cached ids.

    `update` and `run_controller` are robosuite's (1.5) with the lookups replaced: every
    product, its operands and their order are robosuite's, so the torques are bit-equal.
    """

    def site_ids(self) -> _SiteIds:
        """Ids of the reference site (the gripper's) and of the arm's base site."""
        ids = self.__dict__.get("_site_ids")
        if ids is None or ids.sim is not self.sim:
            sites = [self.ref_name, f"{self.naming_prefix}{self.part_name}_center"]
            ids = self._site_ids = _SiteIds(self.sim, sites, self.qpos_index, self.qvel_index)
        return ids

    def update(self, force=False):
        if not (self.new_update or force):
            return
        if not self.lite_physics or force:
            self.sim.forward()
        ids = self.site_ids()
        data, site = ids.data, ids.ids[0]
        jacp, jacr = ids.jacobians(site)
        self.ref_pos[:] = data.site_xpos[site]
        self.ref_ori_mat[:, :] = data.site_xmat[site].reshape([3, 3])
        self.ref_pos_vel[:] = np.dot(jacp, data.qvel)
        self.ref_ori_vel[:] = np.dot(jacr, data.qvel)
        self.J_pos[:, :] = jacp[:, ids.qvel]
        self.J_ori[:, :] = jacr[:, ids.qvel]
        self.J_full[:3] = self.J_pos
        self.J_full[3:] = self.J_ori
        self.joint_pos = np.array(data.qpos[ids.qpos])
        self.joint_vel = np.array(data.qvel[ids.qvel])
        mujoco.mj_fullM(ids.model, ids.full_mass, data.qM)
        # robosuite's indexing, kept: it leaves the matrix in Fortran order, and its numba
        # kernels then take another code path whose last bits differ
        self.mass_matrix = ids.full_mass[ids.qvel_array, :][:, ids.qvel_array]
        self.new_update = False

    def run_controller(self):
        self.update()
        desired_world_pos = self.origin_pos + np.dot(self.origin_ori, self.goal_pos)
        desired_world_ori = np.dot(self.origin_ori, self.goal_ori)
        ori_error = orientation_error(desired_world_ori, self.ref_ori_mat)

        ids = self.site_ids()
        base_jacp, base_jacr = ids.jacobians(ids.ids[1])
        position_error = desired_world_pos - self.ref_pos
        vel_pos_error = -(self.ref_pos_vel - np.dot(base_jacp, ids.data.qvel))
        desired_force = np.multiply(position_error, self.kp[0:3]) + np.multiply(
            vel_pos_error, self.kd[0:3]
        )
        vel_ori_error = -(self.ref_ori_vel - np.dot(base_jacr, ids.data.qvel))
        desired_torque = np.multiply(ori_error, self.kp[3:6]) + np.multiply(
            vel_ori_error, self.kd[3:6]
        )

        lambda_full, lambda_pos, lambda_ori, nullspace_matrix = opspace_matrices(
            self.mass_matrix, self.J_full, self.J_pos, self.J_ori
        )
        if self.uncoupling:
            decoupled_wrench = np.concatenate(
                [np.dot(lambda_pos, desired_force), np.dot(lambda_ori, desired_torque)]
            )
        else:
            decoupled_wrench = np.dot(lambda_full, np.concatenate([desired_force, desired_torque]))

        compensation = ids.data.qfrc_bias[ids.qvel]
        self.torques = np.dot(self.J_full.T, decoupled_wrench) + compensation
        self.torques += nullspace_torques(
            self.mass_matrix, nullspace_matrix, self.initial_joint, self.joint_pos, self.joint_vel
        )
        self.new_update = True  # robosuite's Controller.run_controller
        return self.torques
