#!/usr/bin/env bash
# The main job on the embedded default: a tiny Grok-1 the program synthesizes itself, spread over
# 4 ranks of this machine by Topologies/tiny-4r-pp2-tp2.json (2 pipeline stages × 2 tensor-parallel
# ranks, experts placed within each stage), with the per-rank statistics at the end.
# Knobs: TOPOLOGY (another layout file), PROMPT; extra arguments go to grok-coordinator.
# Everything else is Launch/run-local.sh's (MODEL, THREADS, CONFIG, TIMEOUT, EXPLAIN).
set -euo pipefail
cd "$(dirname "$0")/.."
export TOPOLOGY=${TOPOLOGY:-Topologies/tiny-4r-pp2-tp2.json}
exec bash Launch/run-local.sh --prompt "${PROMPT:-The answer to life, the universe and everything is}" \
  --max-tokens 32 --seed 42 --stats "$@"
