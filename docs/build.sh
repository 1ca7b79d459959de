#!/usr/bin/env bash
# Builds the documentation site into site/ in one command: runs every script in
# examples/ for the gallery, then `mkdocs build --strict` (a broken link, a
# missing API entry or a failing example fails the build).
#
#   bash docs/build.sh            fast gallery (each example with --smoke), as CI does
#   bash docs/build.sh --full     full example runs, for a release build
#   bash docs/build.sh --serve    build, then serve the site on http://localhost:8000
#
# Needs the `docs` extra: pip install -e ".[docs]"
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
mode=smoke
serve=0
port=${PORT:-8000}
for arg in "$@"; do
    case "$arg" in
        --full) mode=full ;;
        --serve) serve=1 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "docs/build.sh: unknown option '$arg' (try --help)" >&2; exit 2 ;;
    esac
done

start=$(date +%s)
if [[ "$mode" == full ]]; then
    "$PYTHON" docs/_tools/gallery.py --full
else
    "$PYTHON" docs/_tools/gallery.py
fi
ODEFIT_DOCS_GALLERY=$mode NO_MKDOCS_2_WARNING=1 \
    "$PYTHON" -m mkdocs build --strict --site-dir site
echo "docs/build.sh: built site/ ($mode gallery) in $(( $(date +%s) - start )) s"

if [[ "$serve" == 1 ]]; then
    echo "docs/build.sh: serving on http://localhost:$port/ (Ctrl-C to stop)"
    exec "$PYTHON" -m http.server "$port" --bind 127.0.0.1 --directory site
fi
