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
