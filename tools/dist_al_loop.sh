#!/usr/bin/env bash
# The active-learning loop on N processes: tools/dist_al_loop.sh CONFIG N [al_loop.py flags]
# Each step trains with DDP, evaluates, and scores the pool on every process (one per GPU with
# NCCL; gloo on CPUs). Environment: see tools/torchrun.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/torchrun.sh" "$2" "$here/al_loop.py" "$1" "${@:3}"
