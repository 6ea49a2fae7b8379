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


SMALL = {"num_cpus": 1, "object_store_memory": 80 * MB}  # one CPU, a small object store
# A node killed on purpose is known dead in about 1.5 s, not Ray's default 15 s or so
HEALTH_CHECKS = {"health_check_period_ms": 500, "health_check_failure_threshold": 3}


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """A head and one worker node (:data:`SMALL` each), joined by this process as driver: a
    ``ray.cluster_utils.Cluster``. A test that adds a node removes it again."""
    ray = need_ray()
    from ray.cluster_utils import Cluster

    head = {**SMALL, "include_dashboard": False, "_system_config": HEALTH_CHECKS}
    c = Cluster(initialize_head=True, head_node_args=head)
    c.add_node(**SMALL)
    c.wait_for_nodes()
    connect(c.address)
    yield c
    ray.shutdown()
    c.shutdown()


@pytest.fixture(scope="session")
def cluster(ray_cluster: Any) -> str:
    """The session's cluster's address."""
    return str(ray_cluster.address)
