#!/usr/bin/env bash
# The launcher the dist_*.sh scripts share: tools/torchrun.sh N SCRIPT [args]
# N processes of SCRIPT with torchrun and --launcher pytorch. NNODES, NODE_RANK, MASTER_ADDR
# and PORT for several machines, as in mmdet's dist_train.sh; PYTHON picks the interpreter.
set -euo pipefail
NPROC=$1
SCRIPT=$2
exec "${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --nproc_per_node="$NPROC" --master_port="${PORT:-29500}" \
    "$SCRIPT" "${@:3}" --launcher pytorch
