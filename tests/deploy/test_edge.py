"""What reaches the platform from outside the cluster: the districts' own systems
through an external Kafka listener with TLS and SCRAM-SHA-512."""

from __future__ import annotations

import ipaddress

import pytest

from tests.deploy.manifests import OVERLAYS, rendered
from tests.deploy.test_policies import of_kind, one, settings


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
