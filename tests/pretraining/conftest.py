"""Pretraining tests run their tiny models on one torch thread (the `one_thread` fixture of tests/conftest.py)."""

import pytest


@pytest.fixture(autouse=True)
def _tiny_models_on_one_thread(one_thread):
    yield
