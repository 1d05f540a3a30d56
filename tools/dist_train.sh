#!/usr/bin/env bash
# Distributed training: tools/dist_train.sh CONFIG N [train.py flags]
# N processes (one per GPU with NCCL; gloo on CPUs without a GPU); a config with the ISALHook
# scores distributed after training. Environment: see tools/torchrun.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/torchrun.sh" "$2" "$here/train.py" "$1" "${@:3}"
