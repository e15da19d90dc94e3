#!/usr/bin/env bash
# Everything a GPU alone can show, in one command of at most 8 minutes on one GPU:
#   1. training images/s of resnet20, resnet18_cifar, vgg16_bn (CIFAR head) and fastnet, each with fp32,
#      bf16-mixed, channels-last and torch.compile, zoo's task through the Trainer against a plain loop on the
#      same device (gpu_throughput.py);
#   2. fast_fashionmnist's time to 94% test accuracy: fixed-length runs of 8, 16 and 32 epochs, one seed each
#      (time_to_accuracy.py), with Fashion-MNIST read from the files that travel with the command.
#
#   bash benchmarks/gpu.sh                       # Fashion-MNIST from $ZOO_DATA_DIR/fashion-mnist, data/fashion-mnist
#   bash benchmarks/gpu.sh /path/to/fashion-mnist
#   QUICK=1 bash benchmarks/gpu.sh               # a few steps of everything: does it run? (on a CPU too)
#
# The Fashion-MNIST folder holds the four IDX .gz files (Debian's dataset-fashion-mnist package installs them in
# /usr/share/datasets/fashion-mnist); copy it to data/fashion-mnist (ignored by git) to take it along to a
# machine that cannot download. Prints the device, then each table as it is measured.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
DATA=${1:-}
if [[ -z "$DATA" ]]; then
  for candidate in "${ZOO_DATA_DIR:-/nonexistent}/fashion-mnist" data/fashion-mnist /usr/share/datasets/fashion-mnist; do
    if [[ -f "$candidate/train-images-idx3-ubyte.gz" ]]; then DATA=$candidate; break; fi
  done
fi
if [[ -z "$DATA" || ! -f "$DATA/train-images-idx3-ubyte.gz" ]]; then
  echo "benchmarks/gpu.sh: error: no Fashion-MNIST IDX files found; give their folder: bash benchmarks/gpu.sh DIR" >&2
  exit 2
fi
export WANDB_MODE=disabled
"$PYTHON" -c "import torch; print('device:', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU: CPU only')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true

if [[ -n "${QUICK:-}" ]]; then
  "$PYTHON" benchmarks/gpu_throughput.py --steps 2 --warmup 1 --batch_size 8 --nets resnet20 fastnet \
    --settings fp32 bf16-mixed channels-last
  exit 0
fi
# about 16 network-setting pairs x 2 arms x (30 + 100 steps): 3 to 4 minutes with compilation
timeout 300 "$PYTHON" benchmarks/gpu_throughput.py --steps 100 --warmup 30 --batch_size 256
# the recipe's own precision choice; 3 runs: 8 + 16 + 32 epochs
timeout 240 "$PYTHON" benchmarks/time_to_accuracy.py --recipe fast_fashionmnist --epochs 8 16 32 --seeds 1 \
  --targets 0.94:60 --data_root "$DATA"
