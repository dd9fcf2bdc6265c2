#!/usr/bin/env bash
# Usage: Launch/run-local.sh [grok-coordinator options…]
#
# Runs one model across several ranks of THIS machine under a layout file: every rank holds only
# its shard, rank 0 streams the text. Prints the resolved layout (grok topology explain) first.
#
# Knobs (environment variables) and their defaults:
#   TOPOLOGY=Topologies/tiny-2r-tp2.json   layout; the number of ranks is its "worldSize"
#   MODEL=                                 GGUF file; empty = the embedded tiny default model
#   THREADS=1                              threads per rank (keep ranks × threads ≤ cores)
#   CONFIG=release                         swift build configuration
#   TIMEOUT=600                            mpirun --timeout: seconds before a hung job is killed
#   EXPLAIN=1                              0 skips printing the layout
#
# Example: TOPOLOGY=Topologies/tiny-4r-pp2-tp2.json Launch/run-local.sh --prompt "Hello" --stats
set -euo pipefail
cd "$(dirname "$0")/.."
TOPOLOGY=${TOPOLOGY:-Topologies/tiny-2r-tp2.json}
MODEL=${MODEL:-}
THREADS=${THREADS:-1}
CONFIG=${CONFIG:-release}
TIMEOUT=${TIMEOUT:-600}
EXPLAIN=${EXPLAIN:-1}

source Launch/lib.sh
build_release "$CONFIG"
ranks=$(world_size "$TOPOLOGY")
model_args=(); [ -n "$MODEL" ] && model_args=(--model "$MODEL")
if [ "$EXPLAIN" = 1 ]; then
  "$bin/grok" topology explain "$TOPOLOGY" --model "${MODEL:-embedded}" >&2
fi
bind=(); [ "$THREADS" -gt 1 ] && bind=(--bind-to none)   # mpirun binds each of ≤2 ranks to one core
exec mpirun --oversubscribe --timeout "$TIMEOUT" "${bind[@]}" -np "$ranks" \
  -x OPENBLAS_NUM_THREADS "$bin/grok-coordinator" --topology "$TOPOLOGY" "${model_args[@]}" --threads "$THREADS" "$@"
