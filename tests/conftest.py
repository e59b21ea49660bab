"""Shared fixtures (helpers live in :mod:`tests.helpers`)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

# pytest-xdist runs two workers on two cores: one torch thread each (two threads per process
# under a busy neighbour run ~20x slower on this machine).
torch.set_num_threads(1)


@pytest.fixture
def outputs(tmp_path: Path) -> Path:
    return tmp_path / "outputs"
