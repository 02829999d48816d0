#!/usr/bin/env bash
# ODL Table 1 / Fig. 4 for one task: every difficulty policy with the same image budget,
# then one aggregated table (summary.md + summary.csv + psnr_vs_level.png) in the
# multirun folder.
#
#   [SEEDS=S] [POLICIES=a,b,...] [EPOCHS_PER_STAGE=E] \
#       experiments/ondemand_table1.sh <inpaint|interp|deblur|denoise> [hydra overrides...]
#
# Budget: EPOCHS_PER_STAGE (E, default 2) x 5 levels = trainer.max_epochs for every
# policy (the staged/cumulative curricula spend E epochs per stage; the paper uses 300).
# Seeds: SEEDS (S, default 1). S=1 runs every policy once with the config's seed (as
# before); S>1 adds seed=1,2,...,S to the sweep (Hydra multirun over curriculum x seed:
# S runs per policy, each seed giving every policy the same test pairs), and the summary
# shows mean ± standard error over the seeds and a paired t-test of each policy against
# ondemand (ODL: 20 trials and a paired t-test, i.e. SEEDS=20). With S>1, do not also
# pass seed=... yourself.
# Extra overrides go to every job, e.g. data=folder data.source.root=/data/celeba
# data.source.counts=[100000,1000,1000] trainer=gpu, or hydra/launcher=slurm.
set -euo pipefail
task=${1:?usage: $0 <inpaint|interp|deblur|denoise> [hydra overrides...]}
shift
E=${EPOCHS_PER_STAGE:-2}
S=${SEEDS:-1}
if ! [[ "$S" =~ ^[1-9][0-9]*$ ]]; then
    echo "$0: SEEDS must be a positive integer (got '$S')" >&2
    exit 2
fi
seeds=()
[ "$S" -gt 1 ] && seeds=("seed=$(seq -s, 1 "$S")")
PY=${PYTHON:-python}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -z "${PYTHON:-}" ]; then  # the current folder's venv, else the repository's
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python
    elif [ -x "$repo/.venv/bin/python" ]; then PY=$repo/.venv/bin/python; fi
fi
POLICIES=${POLICIES:-ondemand,rigid_joint,staged,staged_anti,cumulative,cumulative_anti,fixated_easy,fixated_hard,hard_mining}
exec "$PY" -m lightrestore -m experiment=ondemand_"$task" task_name=table1_"$task" \
    curriculum="$POLICIES" ${seeds[@]+"${seeds[@]}"} trainer.max_epochs=$((5 * E)) "$@"
