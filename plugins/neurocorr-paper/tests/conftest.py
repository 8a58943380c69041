"""One torch thread per test: on a shared 2-core CI machine, 2 OpenMP threads that spin-wait on
each other ran these small models up to 30x slower than 1 (see cli.default_threads)."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # test helpers (label_overlap) by plain name


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
