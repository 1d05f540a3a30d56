#!/usr/bin/env bash
# Distributed ISAL scoring: tools/dist_score.sh CONFIG CHECKPOINT N [score.py flags]
# N processes (one per GPU with NCCL; gloo on CPUs). Environment: see tools/torchrun.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/torchrun.sh" "$3" "$here/score.py" "$1" "$2" "${@:4}"
