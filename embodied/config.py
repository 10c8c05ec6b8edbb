"""Typed configs: dataclasses filled from a YAML file and `--a.b=value` command-line flags.

The same idea as LeRobot's draccus configs, in one small module: the dataclass is the schema
(field types and defaults), a YAML file only overrides, and dotted flags override the YAML.
Unknown keys fail loudly with the list of known ones, before any work starts.

A section whose class is a registry of choices (draccus' `ChoiceRegistry` protocol, a
classmethod `get_choice_class(name)`: LeRobot's policy configs, our world-model families)
takes a `type` key that picks the subclass (`--policy.type=act`); without it, the section's
own class. `to_dict` writes that `type` back, so a saved config loads again.
"""

import dataclasses
import enum
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from embodied.types import UserInputError

T = TypeVar("T")


class ConfigError(UserInputError):
    """A config file or flag that does not fit the config's schema."""


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if dataclasses.is_dataclass(hint):
        if dataclasses.is_dataclass(value) and isinstance(value, hint):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(hint, value, where)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            raise ConfigError(f"{where}: expected one of {[m.value for m in hint]}") from None
    if origin is dict and len(args) == 2 and isinstance(value, dict):
        return {k: _coerce(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        items = [_coerce(v, item, where) for v in value]
        return tuple(items) if origin is tuple else items
    if hint is bool:
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint in (int, float, str):
        try:
            if hint is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            return hint(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}") from None
    return value


def choice(cls: type[T], data: dict, where: str = "config") -> tuple[type[T], dict]:
    """The class a section's `type` key picks (see the module docstring), and the rest."""
    if "type" not in data or not hasattr(cls, "get_choice_class"):
        return cls, data
    data = dict(data)
    name = data.pop("type")
    if name == getattr(cls, "type", None):
        return cls, data
    try:
        return cls.get_choice_class(name), data
    except KeyError:
        known = sorted(cls.get_known_choices()) if hasattr(cls, "get_known_choices") else []
        raise ConfigError(f"{where}: unknown type {name!r}; known: {known}") from None


def from_dict(cls: type[T], data: dict, where: str = "config") -> T:
    """Build `cls` from a nested dict, checking every key and value against the fields."""
    cls, data = choice(cls, data, where)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known keys: {sorted(fields)}")
    values = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:  # a section's own checks (__post_init__)
        raise ConfigError(f"{where}: {err}") from None


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
        if not isinstance(tree, dict):
            raise ConfigError(f"--{dotted}: {part} is not a section")
    tree[leaf] = value


def parse_flags(argv: list[str]) -> tuple[dict, list[str]]:
    """`["--a.b=1", "--c", "x", "pos"]` -> ({"a": {"b": 1}, "c": "x"}, ["pos"])."""
    tree: dict = {}
    positional: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            positional.append(arg)
            i += 1
            continue
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                raise ConfigError(f"--{key} needs a value (--{key}=VALUE)")
            value = argv[i + 1]
            i += 1
        _set_dotted(tree, key, yaml.safe_load(value) if value else "")
        i += 1
    return tree, positional


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(cls: type[T], argv: list[str], config_path: str | None = None) -> T:
    """Defaults <- YAML at `config_path` (or `--config_path=`) <- dotted flags."""
    flags, positional = parse_flags(argv)
    if positional:
        raise ConfigError(f"unexpected argument(s) {positional}; flags look like --key=value")
    config_path = flags.pop("config_path", config_path)
    data: dict = {}
    if config_path:
        path = Path(config_path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
    return from_dict(cls, _merge(data, flags), where=str(config_path or "flags"))


def to_dict(config: Any) -> dict:
    """The resolved config as plain JSON-ready data (enums by value, each choice section
    with its `type`), for saving beside an artifact and comparing runs."""
    out = {}
    if hasattr(config, "get_choice_class") and isinstance(getattr(config, "type", None), str):
        out["type"] = config.type
    for f in dataclasses.fields(config):
        out[f.name] = _plain(getattr(config, f.name))
    return out


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_dict(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, Path):
        return str(value)
    return value


def describe(section: Any, prefix: str = "") -> list[str]:
    """One `--dotted.name=default  (type)` line per setting of a config, nested sections (a
    policy's or world model's config among them) expanded; the fields a section lists in
    `framework_fields` (filled by the framework, not flags) are left out. `--help` of every
    command and benchmark prints these."""
    hints = typing.get_type_hints(type(section))
    hidden = getattr(section, "framework_fields", ())
    lines = []
    if hasattr(section, "get_choice_class") and isinstance(getattr(section, "type", None), str):
        lines.append(f"  --{prefix}type={section.type!r}  (str)")
    for field in dataclasses.fields(section):
        value = getattr(section, field.name)
        if field.name in hidden:
            continue
        if dataclasses.is_dataclass(value):
            lines += describe(value, f"{prefix}{field.name}.")
            continue
        hint = hints.get(field.name)
        shown = _plain(value)
        lines.append(f"  --{prefix}{field.name}={shown!r}  ({getattr(hint, '__name__', hint)})")
    return lines
