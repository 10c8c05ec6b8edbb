"""The structure the design promises, checked on the source: library modules never import
command modules, functions stay short, the RL loop stays small."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMANDS = {"embodied.evaluate", "embodied.eval_world_model", "embodied.train_policy",
            "embodied.train_world_model"}  # fmt: skip
MAY_IMPORT_COMMANDS = {"embodied/cli.py", "embodied/pipeline.py"}
PACKAGES = ("embodied", "envs", "policies", "world_models")
MAX_FUNCTION_LINES = 60


def _modules(*packages: str):
    for package in packages:
        for path in sorted((REPO / package).rglob("*.py")):
            yield path.relative_to(REPO).as_posix(), ast.parse(path.read_text())


def _imported(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_library_module_imports_a_command_module():
    offenders = {
        path: sorted(_imported(tree) & COMMANDS)
        for path, tree in _modules("embodied")
        if path not in MAY_IMPORT_COMMANDS and _imported(tree) & COMMANDS
    }
    assert not offenders


def test_no_function_is_longer_than_60_lines():
    long = [
        f"{path}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path, tree in _modules(*PACKAGES)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long


def test_the_rl_loop_stays_small():
    assert len((REPO / "embodied/rl/finetune.py").read_text().splitlines()) < 250
