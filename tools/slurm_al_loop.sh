#!/usr/bin/env bash
# The active-learning loop on a Slurm cluster, as mmdet's slurm_train.sh:
#   GPUS=16 tools/slurm_al_loop.sh PARTITION JOB_NAME CONFIG WORK_DIR [al_loop.py flags]
# srun starts GPUS processes (GPUS_PER_NODE per node, CPUS_PER_TASK cores each); each reads
# SLURM_PROCID (rank), SLURM_NTASKS (world size), SLURM_LOCALID (local rank) and
# SLURM_NODELIST (its first node is the master; MASTER_PORT, default 29500). SRUN_ARGS adds
# srun flags. Rerun with --resume to continue a run.
set -euo pipefail
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
here=$(cd "$(dirname "$0")" && pwd)
srun -p "$PARTITION" --job-name="$JOB_NAME" --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" --ntasks-per-node="$GPUS_PER_NODE" --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 ${SRUN_ARGS:-} \
    "${PYTHON:-python}" -u "$here/al_loop.py" "$CONFIG" --work-dir="$WORK_DIR" \
    --launcher slurm "${@:5}"
