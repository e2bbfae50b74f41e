#!/usr/bin/env bash
# Evaluate one model on a dataset as a Slurm job array: each array task runs one shard of
# the items (chosen by a hash of the item id, so shards never overlap), on its own GPUs,
# into its own results directory; a last step merges them.
#
#   sbatch examples/slurm_array.sh                       # 8 shards of InternVL3-38B on Video-MME
#   # when every task has finished:
#   vlm-bench merge results/videomme-38b/shard-* --out results/videomme-38b/all
#
# A task that dies (preemption, time limit) can be resubmitted with the same array index:
# --resume reuses the items it had finished.
#SBATCH --job-name=vlm-bench
#SBATCH --array=0-7
#SBATCH --gres=gpu:2
#SBATCH --cpus-per-task=8
#SBATCH --mem=128G
#SBATCH --time=12:00:00
#SBATCH --output=logs/vlm-bench-%A_%a.out
set -euo pipefail

SHARDS=${SHARDS:-8}                       # keep equal to the array size
MODEL=${MODEL:-internvl3_38b}
DATASET=${DATASET:-videomme}
DATA_ROOT=${DATA_ROOT:-/data/Video-MME}
OUT=${OUT:-results/${DATASET}-${MODEL}}

cd "${SLURM_SUBMIT_DIR:-.}"
. .venv/bin/activate

# Slurm sets CUDA_VISIBLE_DEVICES to this task's GPUs; device_map=auto spreads the model
# over them. The frame cache is shared by all tasks (content-keyed, safe to share).
pytest evals -q \
  --backend native --model "${MODEL}" \
  --dataset "${DATASET}" --dataset-root "${DATA_ROOT}" \
  --shard "${SLURM_ARRAY_TASK_ID}/${SHARDS}" \
  --results-dir "${OUT}/shard-${SLURM_ARRAY_TASK_ID}" --resume \
  --frame-cache "${FRAME_CACHE:-${OUT}/frame-cache}"
