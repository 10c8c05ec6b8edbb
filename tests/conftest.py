"""Shared fixtures: small real datasets (recorded by us, and LeRobot's own from ../shared)."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("EMBODIED_FIXTURES", REPO.parent / "shared/data/lerobot_fixtures"))


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Frame caches of the test run go to a temporary folder, never the user's."""
    old = os.environ.get("EMBODIED_CACHE_DIR")
    os.environ["EMBODIED_CACHE_DIR"] = str(tmp_path_factory.mktemp("frame_cache"))
    yield
    if old is None:
        os.environ.pop("EMBODIED_CACHE_DIR", None)
    else:
        os.environ["EMBODIED_CACHE_DIR"] = old


def _fixture_root(name: str) -> Path:
    path = FIXTURES / name
    if not (path / "meta/info.json").is_file():
        pytest.skip(f"LeRobot fixture {path} is absent (set EMBODIED_FIXTURES to its folder)")
    return path


@pytest.fixture(scope="session")
def lerobot_fixture():
    """`lerobot_fixture("pusht_fixture")` -> the folder of a LeRobot dataset from ../shared."""
    return _fixture_root


@pytest.fixture
def weights():
    """`weights(folder)` -> the tensors of the checkpoint folder's model.safetensors."""
    from safetensors.torch import load_file

    return lambda folder: load_file(Path(folder) / "model.safetensors")


@pytest.fixture(scope="session")
def recorded(tmp_path_factory):
    """A small multi-task dataset recorded by `collect`, with its config."""
    from embodied.data.record import CollectConfig, collect

    root = tmp_path_factory.mktemp("recorded") / "lift_cubes"
    config = CollectConfig(
        task="lift,lang_cubes", episodes=2, root=str(root), failure_rate=0.0, success_hold=3
    )
    collect(config)
    return root, config


_FAULTS: list[dict] = []


@pytest.fixture(scope="session")
def fault_report():
    """`fault_report(kind, case, outcome)` records an injected fault and what became of it.
    With EMBODIED_FAULT_REPORT=PATH the run ends by writing the tally there as JSON:
    faults injected and survived by kind (issue 21's figure)."""
    yield lambda kind, case, outcome: _FAULTS.append(
        {"kind": kind, "case": case, "outcome": outcome}
    )
    path = os.environ.get("EMBODIED_FAULT_REPORT")
    if path and _FAULTS:
        import json

        survived = ("clear error", "rebuilt", "stage reran", "survived")
        kinds = sorted({f["kind"] for f in _FAULTS})
        tally = {
            k: {
                "injected": sum(f["kind"] == k for f in _FAULTS),
                "survived": sum(f["kind"] == k and f["outcome"] in survived for f in _FAULTS),
            }
            for k in kinds
        }
        Path(path).write_text(json.dumps({"by_kind": tally, "cases": _FAULTS}, indent=2))
