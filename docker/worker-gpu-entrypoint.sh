#!/bin/sh
# Entrypoint of the GPU runner image: one Celery pool process per GPU.
#
# For a `celery ... worker` command without a concurrency option, appends
# `--concurrency N`, N being ACCELWEB_GPU_CONCURRENCY when set, else the number of GPUs
# that `nvidia-smi -L` lists. Exits 1 when that is not a positive integer (no GPU is
# visible: start the container with the NVIDIA runtime, `--gpus all` or compose's device
# reservation). Any other command runs as given.
set -eu

if [ "${1:-}" = celery ]; then
  given=no worker=no
  for arg in "$@"; do
    case "$arg" in
      worker) worker=yes ;;
      -c|-c*|--concurrency|--concurrency=*) given=yes ;;
    esac
  done
  if [ "$worker" = yes ] && [ "$given" = no ]; then
    count=${ACCELWEB_GPU_CONCURRENCY:-}
    if [ -z "$count" ]; then
      count=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
      echo "worker-gpu: nvidia-smi -L lists ${count:-0} GPU(s)" >&2
    fi
    case "$count" in
      ''|*[!0-9]*|0)
        echo "worker-gpu: no GPU to serve (concurrency '${count}'): start the container" \
             "with the NVIDIA runtime (docker run --gpus all, or the compose gpu profile)," \
             "or set ACCELWEB_GPU_CONCURRENCY" >&2
        exit 1 ;;
    esac
    set -- "$@" --concurrency "$count"
  fi
fi
exec "$@"
