"""PostgreSQL's connections hold at the HorizontalPodAutoscalers' maxima.

No PgBouncer ``Pooler``: the relay and every background job hold *session* advisory locks
(``yishi/relay.py``, ``yishi/jobs.py``), which transaction pooling would hand to another
client, and session pooling saves nothing for pools that keep their connections. So each
pod's pool is sized to fit: for every service, ``YISHI_DB_POOL_MAX`` × (``maxReplicas`` +
the rolling update's ``maxSurge``), summed, plus a reserve, must stay within the
CloudNativePG cluster's ``max_connections``.
"""

from __future__ import annotations

import math
import shutil

import pytest

from tests.deploy.manifests import DEPLOY, OVERLAYS, SERVICES, Obj, render, rendered
from tests.deploy.test_policies import environment, of_kind, one
from yishi.settings import Settings

# Connections that are not the services' pools: CloudNativePG's instance manager and
# metrics exporter, operators' `yishi verify` / `yishi audit` runs (pools of 2 per
# service) and a psql session or two. PostgreSQL's superuser_reserved_connections
# (3 by default) come on top, read from the cluster.
OPERATIONS_RESERVE = 15
# Fewest connections a pod works with: the relay's lock session and its LISTEN for
# commits, two job leaders (notify's delivery worker and vote reminder) and one for
# commands and consumers.
POOL_FLOOR = 5


def pods_at_most(hpa: Obj, deployment: Obj) -> int:
    """Pods of a service at the HPA's maximum during a rolling update."""
    most = hpa["spec"]["maxReplicas"]
    surge = deployment["spec"].get("strategy", {}).get("rollingUpdate", {}).get("maxSurge", "25%")
    if isinstance(surge, str) and surge.endswith("%"):
        surge = math.ceil(most * int(surge[:-1]) / 100)
    return most + int(surge)


def budget(objects: list[Obj]) -> tuple[dict[str, tuple[int, int]], int, int]:
    """Per service (pool max, pods at most), the reserve and max_connections."""
    deployments, hpas = of_kind(objects, "Deployment"), of_kind(objects, "HorizontalPodAutoscaler")
    services = {}
    for service in SERVICES:
        name = f"yishi-{service}"
        env = environment(objects, deployments[name])
        pool = int(env.get("YISHI_DB_POOL_MAX", Settings.model_fields["db_pool_max"].default))
        services[service] = (pool, pods_at_most(hpas[name], deployments[name]))
    parameters = one(objects, "Cluster")["spec"].get("postgresql", {}).get("parameters", {})
    reserve = OPERATIONS_RESERVE + int(parameters.get("superuser_reserved_connections", 3))
    return services, reserve, int(parameters.get("max_connections", 100))


def used(services: dict[str, tuple[int, int]]) -> int:
    return sum(pool * pods for pool, pods in services.values())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_connections_fit_at_the_autoscalers_maxima(overlay):
    services, reserve, max_connections = budget(rendered(overlay))
    assert all(pool >= POOL_FLOOR for pool, _ in services.values()), services
    assert used(services) + reserve <= max_connections, (services, reserve, max_connections)


def test_the_prod_budget_figures():
    services, reserve, max_connections = budget(rendered("overlays/prod"))
    assert services == {s: (6, 7) for s in SERVICES}  # 6 connections × (6 replicas + 1 surge)
    assert (used(services), reserve, max_connections) == (210, 18, 240)  # five services, the portal's too


@pytest.mark.parametrize("change, over", [
    # The default pool (10) at the base's maxima: 5 × 7 × 10 = 350 (4 × 7 × 10 = 280 before the portal).
    (("      - YISHI_DB_POOL_MAX=6\n", ""), 350),
    # Twelve voting pods without a smaller pool or more max_connections.
    (("  maxReplicas: 6\n", "  maxReplicas: 12\n"), 246),
])
def test_a_budget_over_max_connections_is_found(tmp_path, change, over):
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy, ignore=shutil.ignore_patterns("__pycache__"))
    path = copy / "base" / ("kustomization.yaml" if "POOL" in change[0] else "services/voting.yaml")
    text = path.read_text(encoding="utf-8")
    assert change[0] in text
    path.write_text(text.replace(change[0], change[1]), encoding="utf-8")
    services, reserve, max_connections = budget(render(copy / "overlays" / "prod"))
    assert used(services) == over and used(services) + reserve > max_connections
