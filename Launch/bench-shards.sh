#!/usr/bin/env bash
# Usage: Launch/bench-shards.sh
#
# Figures for shard files on this machine: for a synthetic Grok-1-shaped model of a few GB per
# dtype, `grok shard` throughput, compression ratio and peak memory, then the load time of every
# rank (from --stats-json) from the GGUF, from zstd shards and from uncompressed shards, under a
# 2-rank layout, and that time plus the first forward step (a 64-token prefill): a GGUF is only
# mapped at load and read on first use, shards are read and verified (and decompressed) at load,
# so "load + prefill" is the comparable figure. Page caches are dropped before each run when
# allowed (root), so every run reads the disk.
#
# Knobs (environment variables) and their defaults:
#   DIR=/tmp/grokcluster-shard-bench   models and shards (reused)
#   DTYPES="f32 bf16 q8_0"             model dtypes
#   TOPOLOGY=Topologies/tiny-2r-tp2.json
#   ZSTD_LEVEL=3
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${DIR:-/tmp/grokcluster-shard-bench}
DTYPES=${DTYPES:-"f32 bf16 q8_0"}
TOPOLOGY=${TOPOLOGY:-Topologies/tiny-2r-tp2.json}
ZSTD_LEVEL=${ZSTD_LEVEL:-3}

source Launch/lib.sh
build_release
mkdir -p "$DIR"
ranks=$(world_size "$TOPOLOGY")
drop() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
load_seconds() {  # the slowest rank's load time, and load + first forward step
  python3 -c "import json,sys; r = json.load(open(sys.argv[1])); print('%.2f/%.2f' % (max(x['loadSeconds'] for x in r), max(x['loadSeconds'] + x['forwardSeconds'] for x in r)))" "$1"
}
prompt=$(seq -s, 100 163)

printf "%-5s %8s | %-8s %6s %6s %8s | %-22s %10s %10s %10s\n" dtype "model GB" "shard" "MB/s" ratio "peak MB" "load / load+prefill (s)" gguf zstd none
for dtype in $DTYPES; do
  model="$DIR/model-$dtype.gguf"
  # ~2.5 GB in f32: 4 layers (the tiny layouts' shape) of width 2048, 8 experts of width 3072.
  [ -f "$model" ] || "$bin/grok" synth --preset grok-1-small --width 2048 --heads 16 --kv-heads 2 --head-dim 128 \
    --expert-ffn 3072 --vocab 8192 --dtype "$dtype" --output "$model" >&2
  gb=$(python3 -c "import os,sys; print('%.2f' % (os.path.getsize(sys.argv[1]) / 1e9))" "$model")
  rm -rf "$DIR/zstd-$dtype" "$DIR/none-$dtype"
  drop
  start=$(date +%s.%N)
  summary=$("$bin/grok" shard --model "$model" --topology "$TOPOLOGY" --out "$DIR/zstd-$dtype" --zstd-level "$ZSTD_LEVEL" 2>/dev/null)
  seconds=$(python3 -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$start" "$(date +%s.%N)")
  weights=$(sed -E 's/.*: ([0-9.]+) GB of weights.*/\1/' <<<"$summary")
  ratio=$(sed -E 's/.*\(ratio ([0-9.]+)\).*/\1/' <<<"$summary")
  peak=$(sed -E 's/.*peak resident memory ([0-9]+) MB.*/\1/' <<<"$summary")
  rate=$(python3 -c "import sys; print('%.0f' % (float(sys.argv[1]) * 1e3 / float(sys.argv[2])))" "$weights" "$seconds")
  "$bin/grok" shard --model "$model" --topology "$TOPOLOGY" --out "$DIR/none-$dtype" --no-compress >/dev/null 2>&1
  run() { drop; mpirun --oversubscribe -np "$ranks" "$bin/grok-coordinator" "$@" --topology "$TOPOLOGY" --tokens "$prompt" --max-tokens 1 \
            --stats-json "$DIR/stats.json" >/dev/null 2>&1; load_seconds "$DIR/stats.json"; }
  gguf=$(run --model "$model")
  zstd=$(run --shards "$DIR/zstd-$dtype")
  none=$(run --shards "$DIR/none-$dtype")
  printf "%-5s %8s | %-8s %6s %6s %8s | %-22s %10s %10s %10s\n" "$dtype" "$gb" "zstd-$ZSTD_LEVEL" "$rate" "$ratio" "$peak" "slowest rank" "$gguf" "$zstd" "$none"
done
