#!/usr/bin/env bash
# ODL Table 1 / Fig. 4 for one task: every difficulty policy with the same image budget,
# then one aggregated table (summary.md + summary.csv + psnr_vs_level.png) in the
# multirun folder.
#
#   experiments/ondemand_table1.sh <inpaint|interp|deblur|denoise> [hydra overrides...]
#
# Budget: EPOCHS_PER_STAGE (E, default 2) x 5 levels = trainer.max_epochs for every
# policy (the staged/cumulative curricula spend E epochs per stage; the paper uses 300).
# Extra overrides go to every job, e.g. data=folder data.source.root=/data/celeba
# data.source.counts=[100000,1000,1000] trainer=gpu, or hydra/launcher=slurm.
set -euo pipefail
task=${1:?usage: $0 <inpaint|interp|deblur|denoise> [hydra overrides...]}
shift
E=${EPOCHS_PER_STAGE:-2}
PY=${PYTHON:-python}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
POLICIES=${POLICIES:-ondemand,rigid_joint,staged,staged_anti,cumulative,cumulative_anti,fixated_easy,fixated_hard,hard_mining}
exec "$PY" -m lightrestore -m experiment=ondemand_"$task" task_name=table1_"$task" \
    curriculum="$POLICIES" trainer.max_epochs=$((5 * E)) "$@"
