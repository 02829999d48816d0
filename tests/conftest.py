"""Pytest set-up: offline wandb, resolvers registered (see helpers.py)."""

from __future__ import annotations

import helpers  # noqa: F401  (sets WANDB_MODE=offline, registers resolvers)
