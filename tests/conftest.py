import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent

# Unit tests are single-threaded and deterministic; notebooks pick their own settings.
torch.set_num_threads(1)
os.environ.setdefault("GENCOURSE_PROGRESS", "off")


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)
