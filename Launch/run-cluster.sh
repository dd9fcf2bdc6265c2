#!/usr/bin/env bash
# Usage: Launch/run-cluster.sh [grok-coordinator options…]
#
# Runs one model across the nodes of a hostfile (OpenMPI's format: "host slots=N" per line; see
# Launch/hostfile.example), one rank per slot, in the hostfile's order: rank r runs on the r-th
# slot. Every node needs the same build at the same path and the model file (or its shard) at
# MODEL's path. Prints the resolved layout before launching.
#
# Knobs (environment variables) and their defaults:
#   HOSTFILE=Launch/hostfile.example       the nodes
#   TOPOLOGY=Topologies/grok1-q8-4n.json   layout; its "worldSize" must equal the slots used
#   MODEL=                                 GGUF path on every node (required for real models)
#   THREADS=                               threads per rank; default: the node's cores (nproc)
#   NETWORK=tcp                            inter-node transport for OpenMPI's btl: tcp (Ethernet);
#                                          use NETWORK=ucx with a UCX build for InfiniBand
#   IFACE=                                 network interface for tcp (e.g. eth0); empty = OpenMPI picks
#   TIMEOUT=3600                           mpirun --timeout seconds
#   BIN=.build/release                     where grok-coordinator and grok are on every node
set -euo pipefail
cd "$(dirname "$0")/.."
HOSTFILE=${HOSTFILE:-Launch/hostfile.example}
TOPOLOGY=${TOPOLOGY:-Topologies/grok1-q8-4n.json}
MODEL=${MODEL:-}
THREADS=${THREADS:-$(nproc)}
NETWORK=${NETWORK:-tcp}
IFACE=${IFACE:-}
TIMEOUT=${TIMEOUT:-3600}
BIN=${BIN:-.build/release}

source Launch/lib.sh
ranks=$(world_size "$TOPOLOGY")
"$BIN/grok" topology explain "$TOPOLOGY" --model "${MODEL:-embedded}" >&2
mca=(--mca btl "self,vader,$NETWORK")
[ "$NETWORK" = ucx ] && mca=(--mca pml ucx)
[ -n "$IFACE" ] && mca+=(--mca btl_tcp_if_include "$IFACE")
model_args=(); [ -n "$MODEL" ] && model_args=(--model "$MODEL")
exec mpirun --hostfile "$HOSTFILE" -np "$ranks" --map-by slot --bind-to none --timeout "$TIMEOUT" "${mca[@]}" \
  -x OPENBLAS_NUM_THREADS=1 "$BIN/grok-coordinator" --topology "$TOPOLOGY" "${model_args[@]}" --threads "$THREADS" "$@"
