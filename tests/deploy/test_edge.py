"""What reaches the platform from outside the cluster: the APIs through an Ingress with
TLS, and the districts' own systems through an external Kafka listener with TLS and
SCRAM-SHA-512.

The Ingress routes what a caller needs (each served district's API, the API
documentation) and nothing else: the operations endpoints (``/metrics``, ``/healthz``,
``/readyz``) stay inside the cluster, and so does a district the overlay does not serve.
The routes are taken from the services' own OpenAPI documents, so a new route outside
``/{district}`` (like proposals' ``/admin``, for district administrators) fails here
until the Ingress routes it, instead of being unreachable in production.
"""

from __future__ import annotations

import ipaddress

import pytest

from tests.deploy.manifests import OVERLAYS, SERVICES, TREES, Obj, rendered
from tests.deploy.test_policies import of_kind, one, settings

OPERATIONS = ("/metrics", "/healthz", "/healthz/kafka", "/readyz")
DOCS = ("/docs", "/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/openapi.json")


def app_paths(service: str) -> list[str]:
    """The service's documented routes, with path parameters as written (``/{district}/...``)."""
    from tests.support.auth import auth_settings
    from yishi.cli import load_spec
    from yishi.runtime import create_app
    from yishi.settings import Settings

    app = create_app(load_spec(service), Settings(database_url="postgresql://unused",
                                                  kafka_bootstrap="unused:9092", **auth_settings()))
    return list(app.openapi()["paths"])


def backend_for(ingress: Obj, host: str, path: str) -> tuple[str, int] | None:
    """The Service and port an Ingress sends ``host``+``path`` to, by Kubernetes' matching
    rules (Exact: the same path; Prefix: element by element; the longest match wins)."""
    best, best_length = None, -1
    for rule in ingress["spec"]["rules"]:
        if rule.get("host") != host:
            continue
        for entry in rule["http"]["paths"]:
            kind, prefix = entry["pathType"], entry["path"]
            if kind == "Exact":
                hit = path == prefix
            elif kind == "Prefix":
                wanted = [p for p in prefix.split("/") if p]
                hit = [p for p in path.split("/") if p][:len(wanted)] == wanted
            else:
                raise AssertionError(f"{entry}: ImplementationSpecific paths differ between controllers")
            if hit and len(prefix) > best_length:
                service = entry["backend"]["service"]
                best, best_length = (service["name"], service["port"]["number"]), len(prefix)
    return best


@pytest.mark.parametrize("tree", TREES)
def test_each_service_has_an_ingress_with_tls_on_every_host(tree):
    objects = rendered(tree)
    ingresses = of_kind(objects, "Ingress")
    assert set(ingresses) == {f"yishi-{s}" for s in SERVICES}
    services = of_kind(objects, "Service")
    hosts = []
    for name, ingress in ingresses.items():
        spec = ingress["spec"]
        assert spec["ingressClassName"] == "nginx"  # the controller the NetworkPolicies admit
        tls_hosts = {h for entry in spec["tls"] for h in entry["hosts"]}
        assert all(entry["secretName"] for entry in spec["tls"])
        for rule in spec["rules"]:
            assert rule["host"] in tls_hosts, f"{name}: {rule['host']} would be served without TLS"
            hosts.append(rule["host"])
            for entry in rule["http"]["paths"]:
                backend = entry["backend"]["service"]
                assert backend["name"] == name and backend["port"]["number"] == 8000
                assert [p["port"] for p in services[name]["spec"]["ports"]] == [8000]
    assert len(hosts) == len(set(hosts)) == len(SERVICES), hosts


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_ingress_routes_the_served_districts_and_the_docs_and_nothing_else(overlay):
    objects = rendered(overlay)
    districts = settings(objects)["YISHI_DISTRICTS"].split(",")
    for service in SERVICES:
        ingress = of_kind(objects, "Ingress")[f"yishi-{service}"]
        (host,) = {rule["host"] for rule in ingress["spec"]["rules"]}
        target = (f"yishi-{service}", 8000)
        api = [p for p in app_paths(service) if p not in OPERATIONS]
        assert any(p.startswith("/{district}/") for p in api), api
        for path in {p.replace("{district}", d) for p in api for d in districts}:
            assert backend_for(ingress, host, path) == target, path
        for path in DOCS:
            assert backend_for(ingress, host, path) == target, path
        for path in (*OPERATIONS, "/metrics/", "/haidian/proposals", "/docsx", "/"):
            assert backend_for(ingress, host, path) is None, f"{service}: {path} is reachable from outside"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_district_systems_reach_kafka_from_outside_over_tls_and_scram(overlay):
    objects = rendered(overlay)
    kafka = one(objects, "Kafka")
    listeners = {entry["name"]: entry for entry in kafka["spec"]["kafka"]["listeners"]}
    assert set(listeners) == {"tls", "external"}
    internal, external = listeners["tls"], listeners["external"]
    assert internal["type"] == "internal" and internal["networkPolicyPeers"]
    assert external["type"] == "loadbalancer" and external["tls"] is True
    assert external["authentication"] == {"type": "scram-sha-512"}
    assert external["port"] != internal["port"]
    ranges = external["configuration"]["loadBalancerSourceRanges"]
    assert ranges and all(ipaddress.ip_network(r).prefixlen > 0 for r in ranges), \
        "the external listener must not be open to every address"
    assert external["configuration"]["maxConnections"] > 0

    districts = settings(objects)["YISHI_DISTRICTS"].split(",")
    users = of_kind(objects, "KafkaUser")
    for district in districts:
        assert users[f"{district}-integration"]["spec"]["authentication"] == {"type": "scram-sha-512"}
    # The services keep the internal listener (a test in test_policies checks the bootstrap).
    assert settings(objects)["YISHI_KAFKA_BOOTSTRAP"].endswith(f":{internal['port']}")
