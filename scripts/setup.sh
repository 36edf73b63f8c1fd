#!/usr/bin/env bash
# Prepares a fresh machine for sampleloop: the Debian packages the Kafka client is built against,
# the npm packages (with the native ones built or taken from their bundled binaries), and the CLI.
# Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

# prometheus: promtool checks dashboards/prometheus/alerts.yml; chromium: the dashboard's browser tests (playwright-core drives it, no browser download).
debs=(build-essential python3 python3-venv libssl-dev zlib1g-dev libzstd-dev liblz4-dev libsasl2-dev libcurl4-openssl-dev prometheus chromium)
missing=()
for p in "${debs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then sudo_cmd=(); elif command -v sudo >/dev/null; then sudo_cmd=(sudo); else
    echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1
  fi
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# @confluentinc/kafka-javascript builds librdkafka against the system libraries above when its
# prebuilt binary cannot be downloaded; onnxruntime-node's CPU binaries are bundled, so its
# optional GPU download is skipped.
export CKJS_LINKING=dynamic ONNXRUNTIME_NODE_INSTALL=skip
stamp=node_modules/.sampleloop-installed
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ] || [ ! -e node_modules/@confluentinc/kafka-javascript/build/Release/confluent-kafka-javascript.node ]; then
  echo "setup: npm ci (the Kafka client is compiled from source: about 2 minutes)"
  npm ci --no-fund --no-audit --loglevel=error
  touch "$stamp"
fi
npm run --silent build
echo "setup: done (node $(node --version))"
