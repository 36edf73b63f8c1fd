#!/usr/bin/env bash
# Creates (once) the Python virtual environment the example external trainer and the Parquet
# read-back test use, and prints its python path. Cached under ~/.cache/sampleloop, keyed by the
# requirements file's hash, so a changed requirements file gets a fresh environment.
#   scripts/python-env.sh            -> prints the venv's python (creating it if needed)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
requirements="$root/examples/external-trainer/requirements.txt"
python="${SAMPLELOOP_PYTHON:-python3}"
hash="$(sha256sum "$requirements" | cut -c1-12)"
venv="${SAMPLELOOP_CACHE:-$HOME/.cache/sampleloop}/venv-examples-$hash"
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
  rm -rf "$venv"
  "$python" -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2
  touch "$venv/.complete"
fi
echo "$venv/bin/python"
