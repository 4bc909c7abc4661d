#!/usr/bin/env bash
# Build the documentation site into site/ with warnings as errors.
#
#   bash docs/build.sh              execute the notebooks (about 1 minute), then build
#   bash docs/build.sh --no-execute render the notebooks without outputs (fast)
#
# Needs the docs extra (mkdocs-material, mkdocstrings[python], mkdocs-jupyter, nbclient,
# ipykernel). Nothing is fetched from the network. The theory pages (docs/theory/) and the
# results page (docs/results/) are generated and committed; regenerate them with
#   kernelapprox verify --write-docs docs/theory
#   python docs/generate_results.py
set -euo pipefail
cd "$(dirname "$0")/.."
export NO_MKDOCS_2_WARNING=1
python docs/execute_notebooks.py "$@"
python -m mkdocs build --strict
