#!/usr/bin/env bash
# Usage: Launch/validate-plan.sh
#
# How far to trust `grok plan` on this machine: one `grok calibrate` (2 ranks), then for a dozen
# layouts of synthetic models (1–4 ranks under mpirun; TP, EP, expert slicing, PP; batch 1 and 8;
# F32 and Q8_0), `grok bench --topology` runs the real runtime and prints the planner's predicted
# time per decode step beside the measured one. Ends with the median and worst error.
#
# The predictions use the workload's routing: for each model and batch, a first run on one rank
# records it (`--trace-routing`), and every layout's prediction draws its experts from that trace
# (`--routing-trace`). Routing does not depend on the layout (every layout computes the same
# tokens), so this is the routing a planner would record on one node before booking a cluster.
#
# Knobs (environment variables) and their defaults:
#   DIR=/tmp/grokcluster-validate   models, profile and scratch (reused)
#   TOKENS=32                       tokens generated per sequence in each run
#   REPEAT=5                        rounds over the cases; each case's median measured step is kept (this VM is noisy)
#   RECALIBRATE=0                   1 measures the cluster profile again
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${DIR:-/tmp/grokcluster-validate}
TOKENS=${TOKENS:-32}
REPEAT=${REPEAT:-5}
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
# Record each model's and batch's routing once (a one-rank run).
for c in $CASES; do
  IFS=: read -r layout batch dtype <<<"$c"
  trace="$DIR/trace-$dtype-b$batch"
  if [ ! -f "$trace/meta.json" ]; then
    "$bin/grok" bench --topology Topologies/tiny-1r.json --model "$DIR/small-$dtype.gguf" --cluster "$DIR/cluster.json" \
      --batch "$batch" --tokens "$TOKENS" --directory "$DIR" --trace-routing "$trace" >/dev/null
  fi
done
# REPEAT rounds over all the cases (not REPEAT runs of one case after another): the machine's
# drift over the minutes this takes then reaches every case alike.
declare -A runs
for round in $(seq 1 "$REPEAT"); do
  echo "round $round of $REPEAT …" >&2
  for c in $CASES; do
    IFS=: read -r layout batch dtype <<<"$c"
    runs[$c]+="$("$bin/grok" bench --topology "Topologies/$layout.json" --model "$DIR/small-$dtype.gguf" --cluster "$DIR/cluster.json" \
                  --batch "$batch" --tokens "$TOKENS" --directory "$DIR" --routing-trace "$DIR/trace-$dtype-b$batch" \
                  | grep '^decode step' | awk '{print $4 ":" $5}') "
  done
done
printf "%-18s %5s %5s %14s %14s %8s %24s\n" layout batch dtype "predicted ms" "measured ms" error "measured runs (ms)"
for c in $CASES; do
  IFS=: read -r layout batch dtype <<<"$c"
  python3 - "$layout" "$batch" "$dtype" ${runs[$c]} <<'PY'
import statistics, sys
layout, batch, dtype = sys.argv[1:4]
runs = [tuple(map(float, r.split(":"))) for r in sys.argv[4:]]
p = runs[0][0]; m = statistics.median(r[1] for r in runs)
print("%-18s %5s %5s %14.3f %14.3f %+7.1f%% %24s" % (layout, batch, dtype, p, m, 100 * (p - m) / m, " ".join("%.2f" % r[1] for r in runs)))
PY
done | tee "$DIR/validation.txt"
python3 - "$DIR/validation.txt" <<'PY'
import statistics, sys
e = [abs(float(line.split()[5].rstrip("%"))) for line in open(sys.argv[1])]
print("median |error| %.1f%%, worst %.1f%% over %d layouts" % (statistics.median(e), max(e), len(e)))
PY
