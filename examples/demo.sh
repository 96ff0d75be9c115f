#!/usr/bin/env bash
# README's main job: set up (idempotent), build the sample Atlas repository from examples/sample-atlas and show
# what atlas-bot says about its pull request. No GitHub account needed; everything runs on this machine.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/.ci/setup"
exec "$root/.venv/bin/python" "$root/examples/demo.py" "$@"
