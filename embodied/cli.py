"""`embodied`: one console script, one subcommand per stage of the job.

Subcommands are looked up in a table and their modules imported only when run, so
`embodied --help` answers instantly while lerobot, torch and robosuite take seconds each.
"""

import importlib
import sys

# modules of the `full` extra (pip install "embodied[full]"); the base install serves and
# deploys checkpoints without them
FULL_INSTALL_MODULES = ("robosuite", "mujoco", "ray", "matplotlib", "fast_simplification", "h5py")

# name -> (module, function, config class, one-line help)
COMMANDS: dict[str, tuple[str, str, str, str]] = {
    "experts": (
        "embodied.experts_check",
        "check_experts",
        "ExpertsCheckConfig",
        "success rate of every scripted expert over seeded episodes",
    ),
    "collect": (
        "embodied.data.record",
        "collect",
        "CollectConfig",
        "record expert episodes as a LeRobot v3.0 dataset",
    ),
    "convert-robomimic": (
        "embodied.data.robomimic",
        "convert_robomimic",
        "ConvertRobomimicConfig",
        "a robomimic / MimicGen demo.hdf5 as a LeRobot v3.0 dataset: FILE --root DIR",
    ),
    "dataset-info": (
        "embodied.data.summary",
        "print_summary",
        "SummaryConfig",
        "summarize a LeRobot dataset (local root or Hub repo_id)",
    ),
    "train-policy": (
        "embodied.train_policy",
        "train_policy",
        "TrainPolicyConfig",
        "imitation-train a policy (the VLA, or ACT/Diffusion) on a LeRobot dataset (resumes)",
    ),
    "train-world-model": (
        "embodied.train_world_model",
        "train_world_model",
        "TrainWorldModelConfig",
        "fit an action-conditioned video world model on a LeRobot dataset (resumes)",
    ),
    "train-reward-model": (
        "embodied.train_reward_model",
        "train_reward_model",
        "TrainRewardModelConfig",
        "fit the success classifier RL is rewarded by, on real frames; threshold on held-out",
    ),
    "eval-world-model": (
        "embodied.eval_world_model",
        "evaluate_world_model",
        "EvalWorldModelConfig",
        "world-model fidelity on held-out episodes: PSNR/SSIM, success AUROC, controllability",
    ),
    "eval": (
        "embodied.evaluate",
        "evaluate",
        "EvalConfig",
        "run a policy closed-loop in the MuJoCo tasks: success rate, videos, episode records",
    ),
    "finetune": (
        "embodied.rl.finetune",
        "finetune",
        "FinetuneConfig",
        "RL fine-tune the VLA inside world-model rollouts on Ray (GRPO or PPO; resumes)",
    ),
    "serve": (
        "embodied.serve",
        "serve_policy",
        "ServeConfig",
        "serve a policy checkpoint over a websocket to remote arms (localhost by default)",
    ),
    "pipeline": (
        "embodied.pipeline",
        "run_pipeline",
        "PipelineConfig",
        "run every stage from a config: embodied pipeline configs/quickstart.yaml",
    ),
}


def _usage() -> str:
    lines = ["usage: embodied <command> [--key=value ...]", "", "commands:"]
    lines += [f"  {name:<14} {spec[3]}" for name, spec in COMMANDS.items()]
    lines += ["", "embodied <command> --help lists a command's settings."]
    return "\n".join(lines)


def _command_help(name: str, config_cls: type) -> str:
    from embodied.config import describe

    lines = [f"usage: embodied {name} [--key=value ...]", "", COMMANDS[name][3], ""]
    lines.append((config_cls.__doc__ or "").strip())
    lines += ["", "settings (defaults):", *describe(config_cls())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"embodied: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    try:
        return _run(name, rest)
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] not in FULL_INSTALL_MODULES:
            raise
        print(
            f"embodied {name}: needs {err.name!r}, part of the full install: "
            "pip install 'embodied[full]'",
            file=sys.stderr,
        )
        return 2


def _run(name: str, rest: list[str]) -> int:
    module_name, function_name, config_name, _ = COMMANDS[name]
    module = importlib.import_module(module_name)
    config_cls = getattr(module, config_name)
    if any(a in ("-h", "--help") for a in rest):
        print(_command_help(name, config_cls))
        return 0
    from embodied.config import ConfigError, load_config

    positional = [a for a in rest if not a.startswith("--")]
    try:
        if name == "pipeline" and positional:  # `embodied pipeline configs/x.yaml`
            rest = [a for a in rest if a != positional[0]]
            config = load_config(config_cls, rest, config_path=positional[0])
        elif name == "convert-robomimic" and positional:  # `convert-robomimic FILE.hdf5`
            rest = [f"--file={positional[0]}", *(a for a in rest if a != positional[0])]
            config = load_config(config_cls, rest)
        else:
            config = load_config(config_cls, rest)
    except ConfigError as err:
        print(f"embodied {name}: {_one_line(err)}", file=sys.stderr)
        return 2
    from embodied.types import UserInputError

    try:
        getattr(module, function_name)(config)
    except UserInputError as err:  # the user's input, found once work began
        print(f"embodied {name}: {_one_line(err)}", file=sys.stderr)
        return 2
    return 0


def _one_line(err: Exception) -> str:
    """The error's message on one line (a library's message, FFmpeg's say, may hold several)."""
    return " ".join(str(err).split())


if __name__ == "__main__":
    sys.exit(main())
