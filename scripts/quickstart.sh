#!/usr/bin/env bash
# The main job on its small default (2-core CPU): set up, then run the quickstart pipeline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/embodied pipeline configs/quickstart.yaml "$@"
