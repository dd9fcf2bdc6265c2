#!/usr/bin/env bash
# The main job on the embedded default: a tiny Grok-1 the program synthesizes itself, launched by
# mpirun on RANKS ranks (default 2) of this machine. Extra arguments go to grok-coordinator.
set -euo pipefail
cd "$(dirname "$0")/.."
bash Launch/setup.sh
swift build -c release --product grok-coordinator >&2
source Launch/env.sh
exec mpirun --oversubscribe --timeout 300 -np "${RANKS:-2}" .build/release/grok-coordinator \
  --prompt "${PROMPT:-The answer to life, the universe and everything is}" --max-tokens 32 --seed 42 "$@"
