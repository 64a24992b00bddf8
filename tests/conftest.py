from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from toy_envs import register_toy_envs  # tests/ is on the path only from the line above

register_toy_envs()
# one thread, as `learn` uses by default: tests that update an agent without `learn` compute the same way
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def local_ray() -> Iterator[None]:
    """A local Ray with 2 CPUs, shared by every test that asks for it; its workers import from tests/ too."""
    import ray

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level="ERROR",
        runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).parent)}},
    )
    try:
        yield
    finally:
        ray.shutdown()
