#!/usr/bin/env bash
# Distributed ISAL scoring on one machine: tools/dist_score.sh CONFIG CHECKPOINT N [score.py flags]
# N processes (one per GPU; gloo on CPUs without a GPU). NNODES, NODE_RANK, MASTER_ADDR and
# PORT for several machines, as in mmdet's dist_train.sh; PYTHON picks the interpreter.
set -euo pipefail
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
here=$(cd "$(dirname "$0")" && pwd)
exec "${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --nproc_per_node="$NPROC" --master_port="${PORT:-29500}" \
    "$here/score.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "${@:4}"
