#!/usr/bin/env bash
# The test suite CI runs: set up, then pytest (fast and complete by default; `-m slow` adds
# the long checks). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/pytest "$@"
