"""Shared test configuration: hypothesis profiles and the GPU marker."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

# Without a GPU, Triton kernels run on its interpreter; it must be chosen before triton loads.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# "ci" keeps the whole suite well inside CI's budget on 2 cores (and, under CI=true, draws the same
# examples every run, so a red CI is reproducible); "dev" digs deeper with fresh examples each run.
settings.register_profile("ci", max_examples=60, deadline=None, derandomize=bool(os.environ.get("CI")),
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=400, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU: run `make gpu-test` on one (the device tool)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _release_gpu_memory(request: pytest.FixtureRequest) -> object:
    """GPU tests share one device across xdist workers: after each, hand the caching allocator's
    free blocks back, so that one worker's cache cannot starve another worker's large test
    (seen: ``test_16k_tokens`` out of memory with 8 workers holding ~10 GB each)."""
    yield
    if "gpu" in request.keywords and torch.cuda.is_available():
        torch.cuda.empty_cache()
