#!/usr/bin/env bash
# Usage: Launch/validate-plan.sh
#
# How far to trust `grok plan` on this machine: one `grok calibrate` (2 ranks), then for a dozen
# layouts of synthetic models (1–4 ranks under mpirun; TP, EP, expert slicing, PP; batch 1 and 8;
# F32 and Q8_0), `grok bench --topology` runs the real runtime and prints the planner's predicted
# time per decode step beside the measured one. Ends with the median and worst error.
#
# Knobs (environment variables) and their defaults:
#   DIR=/tmp/grokcluster-validate   models, profile and scratch (reused)
#   TOKENS=32                       tokens generated per sequence in each run
#   REPEAT=3                        runs per case; the median measured step is kept (this VM is noisy)
#   RECALIBRATE=0                   1 measures the cluster profile again
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${DIR:-/tmp/grokcluster-validate}
TOKENS=${TOKENS:-32}
REPEAT=${REPEAT:-3}
RECALIBRATE=${RECALIBRATE:-0}

source Launch/lib.sh
build_release
mkdir -p "$DIR"
if [ "$RECALIBRATE" = 1 ] || [ ! -f "$DIR/cluster.json" ]; then
  mpirun --oversubscribe --bind-to none -np 2 "$bin/grok" calibrate --out "$DIR/cluster.json" >&2
fi
for dtype in f32 q8_0; do
  [ -f "$DIR/small-$dtype.gguf" ] || "$bin/grok" synth --preset grok-1-small --dtype "$dtype" --output "$DIR/small-$dtype.gguf" >&2
done

# layout:batch:dtype
CASES=${CASES:-"tiny-1r:1:f32 tiny-1r:8:q8_0 tiny-2r-slice2:1:f32 tiny-2r-slice2:8:q8_0 tiny-2r-tp2:1:q8_0 tiny-2r-tp2:8:f32
  tiny-2r-ep2:1:f32 tiny-2r-ep2:8:q8_0 tiny-2r-pp2:1:f32 tiny-2r-pp2:8:q8_0 tiny-4r-pp2-tp2:1:q8_0 tiny-4r-tp4:8:f32"}
printf "%-18s %5s %5s %14s %14s %8s\n" layout batch dtype "predicted ms" "measured ms" error
errors=()
for c in $CASES; do
  IFS=: read -r layout batch dtype <<<"$c"
  runs=()
  for _ in $(seq 1 "$REPEAT"); do
    runs+=("$("$bin/grok" bench --topology "Topologies/$layout.json" --model "$DIR/small-$dtype.gguf" --cluster "$DIR/cluster.json" \
              --batch "$batch" --tokens "$TOKENS" --directory "$DIR" | grep '^decode step' | awk '{print $4, $5}')")
  done
  read -r predicted measured error <<<"$(python3 -c "
import statistics, sys
runs = [tuple(map(float, r.split())) for r in sys.argv[1:]]
p = runs[0][0]; m = statistics.median(r[1] for r in runs)
print('%.3f %.3f %+.1f%%' % (p, m, 100 * (p - m) / m))" "${runs[@]}")"
  printf "%-18s %5s %5s %14s %14s %8s\n" "$layout" "$batch" "$dtype" "$predicted" "$measured" "$error"
  errors+=("${error%\%}")
done
python3 - "${errors[@]}" <<'PY'
import statistics, sys
e = [abs(float(x)) for x in sys.argv[1:]]
print("median |error| %.1f%%, worst %.1f%% over %d runs" % (statistics.median(e), max(e), len(e)))
PY
