"""A real local Ray cluster for the tests of runs on Ray (a head and a worker node, both on
this machine, one CPU each), started once for the session by the first test that asks for
it. Without Ray installed its tests are skipped here and fail in CI (.ci/run installs it)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from bench.procs.ray_connect import LOOPBACK_ENV, connect
from tests.conftest import IN_CI

MB = 1024 * 1024

# Loopback only: with this, Ray (read when it is imported, so set first) puts every node of
# the test cluster on 127.0.0.1 instead of the host's interface address; the CLI runs the
# tests start inherit it.
os.environ[LOOPBACK_ENV] = "0"


def need_ray() -> Any:
    try:
        import ray
    except ImportError:
        if IN_CI:
            pytest.fail("Ray is not installed (CI must install mailsla[ray]: see .ci/run)")
        pytest.skip("Ray is not installed (make ray)")
    return ray


@pytest.fixture(scope="session")
def cluster() -> Iterator[str]:
    """A head and one worker node, one CPU each, small object stores; its address."""
    ray = need_ray()
    from ray.cluster_utils import Cluster

    small = {"num_cpus": 1, "object_store_memory": 80 * MB}
    c = Cluster(initialize_head=True, head_node_args={**small, "include_dashboard": False})
    c.add_node(**small)
    c.wait_for_nodes()
    connect(c.address)
    yield c.address
    ray.shutdown()
    c.shutdown()
