#!/usr/bin/env bash
# A cached Python virtualenv with an Open Inference Protocol client from another ecosystem
# (NVIDIA's tritonclient[http] from PyPI), for the gateway's interoperability test.
#
#   scripts/oip-client-venv.sh        creates it once (reused afterwards), prints its python path
#
# SAMPLELOOP_CACHE_DIR (default ~/.cache/sampleloop) holds it. Exit 3: PyPI is unreachable.
set -euo pipefail

CACHE_DIR="${SAMPLELOOP_CACHE_DIR:-$HOME/.cache/sampleloop}"
TRITONCLIENT_VERSION="${SAMPLELOOP_TRITONCLIENT_VERSION:-2.73.0}"
VENV="$CACHE_DIR/venv-oip-client-$TRITONCLIENT_VERSION"
PYTHON="${SAMPLELOOP_PYTHON:-python3}"

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import tritonclient.http' 2>/dev/null; then
  echo "$VENV/bin/python"
  exit 0
fi
mkdir -p "$CACHE_DIR"
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV" >&2
if ! "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "tritonclient[http]==$TRITONCLIENT_VERSION" >&2; then
  rm -rf "$VENV"
  if ! "$PYTHON" -c 'import urllib.request; urllib.request.urlopen("https://pypi.org/simple/", timeout=10)' 2>/dev/null; then
    echo "PyPI is unreachable: cannot install tritonclient[http]" >&2
    exit 3
  fi
  exit 1
fi
echo "$VENV/bin/python"
