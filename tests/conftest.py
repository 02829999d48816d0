"""Pytest set-up: offline wandb, resolvers registered (see helpers.py); tests marked
``gpu`` run only where CUDA is available (``make test-gpu`` runs just them)."""

from __future__ import annotations

import os

import helpers  # noqa: F401  (sets WANDB_MODE=offline, registers resolvers)
import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs one worker per core (pytest -n auto):
    # one thread each, for the worker and the CLI processes it starts, or the workers'
    # thread pools fight over the cores
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run on a GPU machine: make test-gpu)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def one_thread():
    """One intra-op thread for the test (tiny tensors: threads only add overhead)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
