#!/usr/bin/env bash
# Usage: Launch/compare-placements.sh
#
# The placement research loop on this machine, end to end: a skewed synthetic model (Zipf 1.2
# expert popularity, inter-layer affinity 0.5), a routing trace of a prompt file, one layout per
# strategy on RANKS ranks with REDUNDANT spare expert slots, then for each: the evaluator's
# imbalance and all-to-all bytes (replaying the trace) and the runtime's measured decode speed at
# batch 1 and batch 8 (grok bench --topology). Also writes the heatmaps of the EPLB layout.
#
# Knobs (environment variables) and their defaults:
#   DIR=/tmp/grokcluster-placement   model, trace, layouts (reused)
#   RANKS=4  REDUNDANT=4  TOKENS=24
#   STRATEGIES="contiguous round-robin greedy eplb shadow affinity"
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${DIR:-/tmp/grokcluster-placement}
RANKS=${RANKS:-4}
REDUNDANT=${REDUNDANT:-4}
TOKENS=${TOKENS:-24}
STRATEGIES=${STRATEGIES:-"contiguous round-robin greedy eplb shadow affinity"}

source Launch/lib.sh
build_release
mkdir -p "$DIR"
model="$DIR/skewed-small.gguf"
[ -f "$model" ] || "$bin/grok" synth --preset grok-1-small --dtype q8_0 --router-skew 1.2 --router-affinity 0.5 --seed 11 \
  --output "$model" >&2
for i in $(seq 1 16); do echo "Prompt $i: where should the experts of every layer live on a cluster of CPU servers?"; done > "$DIR/prompts.txt"
rm -rf "$DIR/trace"
"$bin/grok-coordinator" --model "$model" --prompt-file "$DIR/prompts.txt" --max-tokens 16 --temperature 0 --ignore-eos \
  --trace-routing "$DIR/trace" >/dev/null 2>&1

printf "%-12s %10s %12s %14s %14s\n" strategy imbalance "a2a MB/step" "decode tok/s" "batch-8 tok/s"
for s in $STRATEGIES; do
  layout="$DIR/$s.json"
  "$bin/grok" place --trace "$DIR/trace" --ranks "$RANKS" --redundant "$REDUNDANT" --strategy "$s" --out "$layout" >/dev/null
  read -r imbalance bytes <<<"$("$bin/grok" place evaluate --trace "$DIR/trace" --topology "$layout" --batch 8 --json | python3 -c "
import json, sys; e = json.load(sys.stdin)
print('%.3f %.3f' % (e['imbalance'], e['alltoallBytes'] / max(e['steps'], 1) / 1e6))")"
  one=$("$bin/grok" bench --topology "$layout" --model "$model" --batch 1 --tokens "$TOKENS" --directory "$DIR" | awk '/^decode tokens/ {print $4}')
  eight=$("$bin/grok" bench --topology "$layout" --model "$model" --batch 8 --tokens "$TOKENS" --directory "$DIR" | awk '/^decode tokens/ {print $4}')
  printf "%-12s %10s %12s %14s %14s\n" "$s" "$imbalance" "$bytes" "$one" "$eight"
done
"$bin/grok" place evaluate --trace "$DIR/trace" --topology "$DIR/eplb.json" --batch 8 --svg "$DIR/eplb.svg" >/dev/null
echo "heatmaps of the EPLB layout: $DIR/eplb.svg" >&2
