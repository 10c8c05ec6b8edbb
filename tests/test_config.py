import re
from dataclasses import dataclass, field

import pytest

from embodied.config import ConfigError, load_config, parse_flags


@dataclass
class Inner:
    lr: float = 1e-3
    cameras: tuple[str, ...] = ("agentview",)


@dataclass
class Outer:
    name: str = "x"
    steps: int = 10
    flag: bool = False
    inner: Inner = field(default_factory=Inner)


def test_flags_override_yaml_which_overrides_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("steps: 5\ninner:\n  lr: 0.5\n")
    config = load_config(
        Outer, ["--inner.lr=0.25", "--flag", "true", "--inner.cameras=a,b"], str(path)
    )
    assert config == Outer(name="x", steps=5, flag=True, inner=Inner(lr=0.25, cameras=("a", "b")))


def test_config_path_flag_is_read(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: from_file\n")
    assert load_config(Outer, [f"--config_path={path}"]).name == "from_file"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--stepz=3"], "unknown key(s) ['stepz']"),
        (["--inner.momentum=3"], "unknown key(s) ['momentum']"),
        (["--steps=three"], "expected int"),
        (["--flag=maybe"], "expected true or false"),
        (["--steps"], "needs a value"),
        (["stray"], "unexpected argument"),
        (["--config_path=/nonexistent.yaml"], "does not exist"),
    ],
)
def test_bad_config_names_the_problem(argv, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(Outer, argv)


def test_parse_flags_keeps_positionals():
    tree, positional = parse_flags(["configs/x.yaml", "--a.b=1"])
    assert tree == {"a": {"b": 1}} and positional == ["configs/x.yaml"]


def test_policy_and_world_model_sections_are_typed_and_their_type_picks_the_class():
    """`--policy.type=act` gives LeRobot's ACT config, the VLA's fields are checked by name,
    and a saved config (with its type) loads back to the same config."""
    from lerobot.policies.act.configuration_act import ACTConfig

    from embodied.config import from_dict, to_dict
    from embodied.train_policy import TrainPolicyConfig
    from embodied.train_world_model import TrainWorldModelConfig
    from policies.vla.configuration_vla import VLAConfig

    vla = load_config(TrainPolicyConfig, ["--policy.dim=64", "--policy.vision_channels=8,16"])
    assert isinstance(vla.policy, VLAConfig) and vla.policy.vision_channels == (8, 16)
    act = load_config(
        TrainPolicyConfig,
        ["--policy.type=act", "--policy.chunk_size=7", "--policy.n_action_steps=7"],
    )
    assert isinstance(act.policy, ACTConfig) and act.policy.chunk_size == 7
    assert from_dict(TrainPolicyConfig, to_dict(act)).policy == act.policy
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['dimm'\]"):
        load_config(TrainPolicyConfig, ["--policy.dimm=3"])
    with pytest.raises(ConfigError, match="unknown type 'juggler'"):
        load_config(TrainPolicyConfig, ["--policy.type=juggler"])
    wm = load_config(TrainWorldModelConfig, ["--world_model.frame_stride=5"])
    assert wm.world_model.frame_stride == 5 and to_dict(wm)["world_model"]["type"] == "latent_conv"
    with pytest.raises(ConfigError, match="unknown type 'bogus'"):
        load_config(TrainWorldModelConfig, ["--world_model.type=bogus"])


def test_every_shipped_config_loads():
    from pathlib import Path

    from embodied.pipeline import PipelineConfig

    configs = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
    assert len(configs) >= 4
    for path in configs:
        load_config(PipelineConfig, [], config_path=str(path))
