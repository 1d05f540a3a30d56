#!/usr/bin/env bash
# Distributed training on one machine: tools/dist_train.sh CONFIG N [train.py flags...]
# N processes (one per GPU with NCCL; gloo on CPUs without a GPU); configs with the ISALHook
# score distributed after training. NNODES, NODE_RANK, MASTER_ADDR and PORT for several
# machines, as in mmdet's dist_train.sh; PYTHON picks the interpreter (default: python).
set -euo pipefail
CONFIG=$1
NPROC=$2
here=$(cd "$(dirname "$0")" && pwd)
exec "${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --nproc_per_node="$NPROC" --master_port="${PORT:-29500}" \
    "$here/train.py" "$CONFIG" --launcher pytorch "${@:3}"
