#!/usr/bin/env bash
# Build the documentation site into site/ with warnings as errors.
#
#   bash docs/build.sh              execute the notebooks and the example scripts (a few
#                                   minutes), then build
#   bash docs/build.sh --no-execute render the notebooks and examples without outputs (fast)
#
# Needs the docs extra (mkdocs-material, mkdocstrings[python], mkdocs-jupyter, nbclient,
# ipykernel) and npm, which fetches MathJax from the npm registry into docs/javascripts/vendor/
# (ignored by git) on the first build, so the built site renders math with no network. Nothing
# else is fetched. The theory pages (docs/theory/) and the
# results page (docs/results/) are generated and committed; regenerate them with
#   kernelapprox verify --write-docs docs/theory
#   python docs/generate_results.py
set -euo pipefail
cd "$(dirname "$0")/.."
export NO_MKDOCS_2_WARNING=1

# MathJax, shipped with the site: the one combined component with every TeX extension and the
# SVG glyphs built in (no font files), plus its licence. Pinned; fetched once.
MATHJAX_VERSION=3.2.2
mathjax_dir=docs/javascripts/vendor/mathjax
if [[ "$(cat "$mathjax_dir/VERSION" 2>/dev/null)" != "$MATHJAX_VERSION" ]]; then
  command -v npm >/dev/null || { echo "docs/build.sh: npm is needed to fetch MathJax" >&2; exit 1; }
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "mathjax@$MATHJAX_VERSION" >/dev/null)
  tar -xzf "$tmp/mathjax-$MATHJAX_VERSION.tgz" -C "$tmp" package/es5/tex-svg-full.js package/LICENSE
  mkdir -p "$mathjax_dir"
  cp "$tmp/package/es5/tex-svg-full.js" "$tmp/package/LICENSE" "$mathjax_dir/"
  echo "$MATHJAX_VERSION" > "$mathjax_dir/VERSION"
fi

python docs/execute_notebooks.py "$@"
python docs/build_gallery.py "$@"   # runs examples/*.py; thumbnails of their figures
python -m mkdocs build --strict
