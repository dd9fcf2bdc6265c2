#!/usr/bin/env bash
# Usage: Launch/bench-layouts.sh
#
# Decode speed and communication share of the distributed runtime on this machine: one synthetic
# Grok-1-shaped model of about 1 GB (4 layers, width 2048, 16/2 heads, 8 experts of width 1024,
# F32), generated once, run under several layouts with --stats. Prints one row per layout:
# decode tokens/s, and per rank the share of forward time spent communicating, with the bytes
# sent per decode token.
#
# Knobs (environment variables) and their defaults:
#   DIR=/tmp/grokcluster-bench    where the model is written (reused)
#   DTYPE=f32                     matrix dtype of the model (f32, bf16, q8_0, …)
#   TOKENS=64                     decode tokens per run (per sequence)
#   BATCH=1                       sequences generated together (BATCH > 1: a prompt file of BATCH lines);
#                                 decode tok/s then counts every sequence's tokens
#   LAYOUTS="1r:tiny-1r 1r-2threads:tiny-1r tp2+ep:tiny-2r-tp2 tp2+slice:tiny-2r-slice2 ep2:tiny-2r-ep2 pp2:tiny-2r-pp2"
#                                 label:topology pairs (a label ending in -2threads runs 2 threads per rank)
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${DIR:-/tmp/grokcluster-bench}
DTYPE=${DTYPE:-f32}
TOKENS=${TOKENS:-64}
BATCH=${BATCH:-1}
LAYOUTS=${LAYOUTS:-"1r:tiny-1r 1r-2threads:tiny-1r tp2+ep:tiny-2r-tp2 tp2+slice:tiny-2r-slice2 ep2:tiny-2r-ep2 pp2:tiny-2r-pp2"}

source Launch/lib.sh
build_release
mkdir -p "$DIR"
model="$DIR/grok1-1gb-$DTYPE.gguf"
[ -f "$model" ] || "$bin/grok" synth --preset grok-1-small --width 2048 --heads 16 --kv-heads 2 --head-dim 128 \
  --expert-ffn 1024 --vocab 4096 --dtype "$DTYPE" --output "$model" >&2

prompt=(--tokens 1,2,3,4,5,6,7,8)
if [ "$BATCH" -gt 1 ]; then
  for i in $(seq 1 "$BATCH"); do echo "Prompt number $i of the batch, with a few words"; done > "$DIR/prompts-$BATCH.txt"
  prompt=(--prompt-file "$DIR/prompts-$BATCH.txt")
fi
printf "%-12s %-22s %6s %12s  %s\n" layout topology ranks "decode tok/s" "per rank: comm % of forward, MB sent per decode step"
for pair in $LAYOUTS; do
  label=${pair%%:*}; topology=Topologies/${pair#*:}.json
  threads=1; bind=(); [[ $label == *-2threads ]] && { threads=2; bind=(--bind-to none); }  # mpirun binds ≤2 ranks to one core each
  ranks=$(world_size "$topology")
  stats="$DIR/stats-$label.json"
  line=$(mpirun --oversubscribe --timeout 600 "${bind[@]}" -np "$ranks" "$bin/grok-coordinator" --model "$model" --topology "$topology" \
    "${prompt[@]}" --max-tokens "$TOKENS" --temperature 0 --ignore-eos --threads "$threads" \
    --stats-json "$stats" 2>&1 >/dev/null | grep '^prefill:')
  rate=$(sed -E 's/.*decode: [0-9]+ tokens in [0-9.]+ s \(([0-9.]+) tok\/s\).*/\1/' <<<"$line")
  ranks_summary=$(python3 - "$stats" "$TOKENS" <<'PY'
import json, sys
ranks = json.load(open(sys.argv[1])); tokens = int(sys.argv[2])   # decode steps: MB per step
parts = []
for r in ranks:
    f = r["forwardSeconds"]; comm = f - r["computeSeconds"]
    sent = sum(e["bytesSent"] for k, e in r["communication"].items() if k != "broadcast")
    parts.append("r%d %4.1f%% %6.3f MB" % (r["rank"], 100 * comm / f if f else 0, sent / tokens / 1e6))
print("  ".join(parts))
PY
)
  printf "%-12s %-22s %6s %12s  %s\n" "$label" "${pair#*:}" "$ranks" "$rate" "$ranks_summary"
done
