"""The representative set for the expensive cross-products (interrupt-and-resume, the
bad-input suite, SLURM requeue), chosen by what has state.

Every experiment still composes, instantiates and trains one step (tests/test_configs.py);
the cross-products run on one experiment per kind of state: each stateful difficulty
policy (on-demand weights from validation, staged and cumulative schedules, the
hard-mining pool and its top-k loss wrapper, fixated settings), the stateful loss (PSPL's
schedule, alone and under the hard-mining wrapper), each task family and the model
shapes with their own structure (ODL's autoencoder, LapSRN's multi-scale outputs). The
multi-network, multi-optimiser method is tests/toy_methods.py, covered by
tests/test_method_core.py. A new method or policy with state of its own adds a row here.
"""

from __future__ import annotations

from lightrestore.config import config_dir

EXPERIMENTS = sorted(p.stem for p in (config_dir() / "experiment").glob("*.yaml"))

#: label -> the overrides of one run (an experiment, maybe another curriculum)
REPRESENTATIVE: dict[str, tuple[str, ...]] = {
    "ondemand_inpaint": ("experiment=ondemand_inpaint",),  # on-demand: weights from validation
    "staged_deblur": ("experiment=ondemand_deblur", "curriculum=staged"),
    "cumulative_anti_interp": ("experiment=ondemand_interp", "curriculum=cumulative_anti"),
    "hard_mining_denoise": ("experiment=ondemand_denoise", "curriculum=hard_mining"),  # grey
    "fixated_hard_inpaint": ("experiment=fixated_hard_inpaint",),
    "rigid_joint_deblur": ("experiment=rigid_joint_deblur",),
    "sr_edsr_x2_pspl": ("experiment=sr_edsr_x2_pspl",),  # PSPL's schedule t
    "sr_srcnn_x3_pspl_hard_mining": ("experiment=sr_srcnn_x3_pspl", "curriculum=hard_mining"),
    "sr_lapsrn_x4": ("experiment=sr_lapsrn_x4",),  # multi-scale outputs
}

#: SLURM's requeue path does not depend on the state's kind: a subset
REQUEUE = ("ondemand_inpaint", "hard_mining_denoise", "sr_edsr_x2_pspl", "sr_lapsrn_x4")
