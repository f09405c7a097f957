"""What the rendered manifests must say, beyond being schema-valid.

Every service has its Deployment (probes, resources, non-root read-only security
context, graceful stop), Service, PodDisruptionBudget, HorizontalPodAutoscaler and
NetworkPolicy; topics are replicated 3 with min.insync.replicas 2; Kafka ACLs give each
service what it needs in its districts and nothing in others; every Secret and
ConfigMap a pod needs is rendered, made by an operator, or documented for ops.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import re
import shutil
import subprocess
from urllib.parse import parse_qs, urlsplit

import pytest

from services.notify.settings import NotifySettings
from services.portal.settings import PortalSettings
from tests.deploy.manifests import DEPLOY, OVERLAYS, READERS, SERVICES, TREES, Obj, kubernetes_errors, render, rendered
from yishi import names
from yishi.settings import Settings

# What each service consumes (the platform's facts; the generator must agree).
CONSUMES = {
    "proposals": ("voting", "oversight"),
    "voting": ("proposals",),
    "oversight": ("proposals", "voting"),
    "notify": ("proposals", "voting", "oversight", "notify"),
    "portal": ("proposals", "voting", "oversight"),  # a reader: no topics of its own
}
EXPECTED_DISTRICTS = {"overlays/dev": ["gulou"], "overlays/prod": ["gulou", "chaoyang"]}
# Secrets ops provide (deploy/README.md says how); the rest come from the operators.
OPS_SECRETS = {f"yishi-pg-{s}" for s in SERVICES} | {f"yishi-{s}-signing-key" for s in SERVICES}


def load_generator():
    spec = importlib.util.spec_from_file_location("new_district", DEPLOY / "new_district.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def of_kind(objects: list[Obj], kind: str) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def one(objects: list[Obj], kind: str) -> Obj:
    found = list(of_kind(objects, kind).values())
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def selects(selector: dict, labels: dict) -> bool:
    assert set(selector) <= {"matchLabels", "matchExpressions"}, f"unexpected selector form {selector}"
    wanted = selector.get("matchLabels", {})
    expressions = selector.get("matchExpressions", [])
    assert all(e["operator"] == "In" for e in expressions), f"unexpected selector form {selector}"
    return bool(wanted or expressions) and all(labels.get(k) == v for k, v in wanted.items()) and all(
        labels.get(e["key"]) in e["values"] for e in expressions)


def pod_labels(deployment: Obj) -> dict:
    return deployment["spec"]["template"]["metadata"]["labels"]


def settings(objects: list[Obj]) -> dict[str, str]:
    maps = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("yishi-config")]
    assert len(maps) == 1
    return maps[0]["data"]


def env_of(container: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in container.get("env", [])}


def image_ok(image: str) -> bool:
    """Explicit version tag (or digest), never latest."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.partition(":")[2]
    if digest:
        return digest.startswith("sha256:") and tag != "latest"
    return bool(re.search(r"\d", tag)) and tag != "latest"


# -- services ----------------------------------------------------------------------------

@pytest.mark.parametrize("tree", TREES)
def test_every_service_has_deployment_service_pdb_hpa_and_networkpolicy(tree):
    objects = rendered(tree)
    deployments = of_kind(objects, "Deployment")
    assert set(deployments) == {f"yishi-{s}" for s in SERVICES}
    for service in SERVICES:
        name = f"yishi-{service}"
        labels = pod_labels(deployments[name])
        assert selects(deployments[name]["spec"]["selector"], labels)
        assert "replicas" not in deployments[name]["spec"], "the HorizontalPodAutoscaler owns the replica count"

        svc = of_kind(objects, "Service")[name]
        assert all(labels.get(k) == v for k, v in svc["spec"]["selector"].items())
        assert [p["port"] for p in svc["spec"]["ports"]] == [8000]

        pdb = of_kind(objects, "PodDisruptionBudget")[name]
        assert selects(pdb["spec"]["selector"], labels)
        assert "maxUnavailable" in pdb["spec"] or "minAvailable" in pdb["spec"]

        hpa = of_kind(objects, "HorizontalPodAutoscaler")[name]
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]

        policies = [p for p in of_kind(objects, "NetworkPolicy").values() if selects(p["spec"]["podSelector"], labels)]
        own = [p for p in policies if p["metadata"]["name"] == name]
        assert own and set(own[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}


@pytest.mark.parametrize("tree", TREES)
def test_deployments_are_hardened_probed_and_stop_gracefully(tree):
    for name, deployment in of_kind(rendered(tree), "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] > 0, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        volumes = {v["name"]: v for v in pod["volumes"]}
        service = name.removeprefix("yishi-")
        (container,) = pod["containers"]

        assert image_ok(container["image"]), container["image"]
        assert container["args"] == [service]
        assert env_of(container)["YISHI_SERVICE"]["value"] == service

        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True, name
        assert sc["allowPrivilegeEscalation"] is False, name
        assert sc["capabilities"]["drop"] == ["ALL"], name
        assert sc.get("runAsNonRoot", True) is True and sc.get("privileged", False) is False, name

        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"http": 8000}
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = container[probe]["httpGet"]
            assert get["path"] == path, (name, probe)
            assert ports.get(get["port"], get["port"]) == 8000, (name, probe)

        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), name
        assert "memory" in resources["limits"], name

        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert set(mounts.values()) <= set(volumes), f"{name} mounts a volume it does not declare"
        assert "emptyDir" in volumes[mounts["/tmp"]], f"{name}: /tmp must be an emptyDir"

        sleep = container["lifecycle"]["preStop"]["exec"]["command"]
        assert sleep[-2].endswith("sleep")
        assert pod["terminationGracePeriodSeconds"] > int(sleep[-1]) + 10, name


def environment(objects: list[Obj], deployment: Obj) -> dict[str, str]:
    """The plain (non-secret) variables of a Deployment's container: its ConfigMaps, then its env."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    maps = of_kind(objects, "ConfigMap")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(maps[source["configMapRef"]["name"]]["data"])
    env.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
    return env


def parsed(cls, env: dict[str, str]):
    """``cls`` (a settings class) read from ``env`` as the service would read its environment."""
    prefix = cls.model_config["env_prefix"]
    return cls(**{k.removeprefix(prefix).lower(): v for k, v in env.items()
                  if k.startswith(prefix) and k.removeprefix(prefix).lower() in cls.model_fields})


def endpoint(url: str, default_port: int | None = None) -> tuple[str, int]:
    parts = urlsplit(url if "://" in url else f"//{url}")
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme, default_port)
    assert parts.hostname and port, f"no host and port in {url!r}"
    return parts.hostname, port


# Every setting that names a host to connect to, and how the derivation below reads it.
ENDPOINT_SETTINGS = {
    Settings: {"database_url", "kafka_bootstrap", "auth_issuer", "auth_jwks_url"},
    NotifySettings: {"smtp_host", "sms_gateway_url", "wechat_gateway_url", "bulletin_board_urls", "webhook_origins"},
    PortalSettings: {"oidc_discovery_url", "service_urls"},
}


def needed_endpoints(service: str, env: dict[str, str]) -> set[tuple[str, int]]:
    """The (host, port) pairs a service connects to, derived from its settings."""
    s = parsed(Settings, env)
    needed = {endpoint(b) for b in (s.kafka_bootstrap or "").split(",") if b}
    for url, port in ((s.database_url, 5432), (s.auth_issuer, None), (s.auth_jwks_url, None)):
        if url:
            needed.add(endpoint(url, port))
    if service == "notify":
        n = parsed(NotifySettings, env)
        if n.smtp_host:
            needed.add((n.smtp_host, n.smtp_port))
        # Webhooks go out once YISHI_NOTIFY_WEBHOOK_SECRET is set (it comes from a Secret: count them).
        urls = [n.sms_gateway_url, n.wechat_gateway_url, *n.bulletin_board_urls, *n.webhook_origins]
        needed |= {endpoint(u) for u in urls if u}
    if service == "portal":
        # The sign-in provider, and the services the signed-in forms send commands to.
        discovery = env.get("YISHI_PORTAL_OIDC_DISCOVERY_URL")
        urls = [*([discovery] if discovery else []), *json.loads(env.get("YISHI_PORTAL_SERVICE_URLS", "{}")).values()]
        needed |= {endpoint(u) for u in urls}
    return needed


def in_cluster_pods(objects: list[Obj]) -> dict[str, dict[str, str]]:
    """Host names served inside the cluster -> the labels of the pods behind them (the
    operators' naming: Strimzi's bootstrap Service, CloudNativePG's -rw/-ro/-r Services)."""
    hosts = {}
    for kafka in of_kind(objects, "Kafka"):
        hosts[f"{kafka}-kafka-bootstrap"] = {"strimzi.io/cluster": kafka, "strimzi.io/broker-role": "true"}
    for cluster in of_kind(objects, "Cluster"):
        for suffix in ("rw", "ro", "r"):
            hosts[f"{cluster}-{suffix}"] = {"cnpg.io/cluster": cluster}
    for name, service in of_kind(objects, "Service").items():  # the platform's own Services
        hosts.setdefault(name, service["spec"]["selector"])
    return hosts


DNS = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
       "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
ENDPOINT_ANNOTATION = "yishi.io/egress-endpoint"


def allowed_egress(objects: list[Obj], labels: dict) -> set[tuple]:
    """What the NetworkPolicies selecting pods with ``labels`` let them reach, as
    ("pods", labels, port, protocol), ("dns", port, protocol) and ("external", host, port)."""
    allowed = set()
    for policy in of_kind(objects, "NetworkPolicy").values():
        spec = policy["spec"]
        if "Egress" not in spec["policyTypes"] or not selects(spec["podSelector"], labels):
            continue
        named = policy["metadata"].get("annotations", {}).get(ENDPOINT_ANNOTATION)
        for rule in spec.get("egress", []):
            assert rule.get("to") and rule.get("ports"), f"{policy['metadata']['name']}: egress to anywhere"
            for peer in rule["to"]:
                for port in rule["ports"]:
                    if peer == DNS:
                        allowed.add(("dns", port["port"], port["protocol"]))
                    elif "ipBlock" in peer:
                        block = ipaddress.ip_network(peer["ipBlock"]["cidr"])
                        assert block.prefixlen > 0, f"{policy['metadata']['name']}: the whole internet"
                        assert not block.overlaps(ipaddress.ip_network("169.254.0.0/16")), "cloud metadata"
                        assert named, f"{policy['metadata']['name']}: an ipBlock must name its endpoint"
                        host, named_port = endpoint(named)
                        assert (port["port"], port["protocol"]) == (named_port, "TCP"), policy["metadata"]["name"]
                        allowed.add(("external", host, named_port))
                    else:
                        assert set(peer) == {"podSelector"}, f"{policy['metadata']['name']}: peer {peer}"
                        pods = tuple(sorted(peer["podSelector"]["matchLabels"].items()))
                        allowed.add(("pods", pods, port["port"], port["protocol"]))
    return allowed


def egress_differences(objects: list[Obj]) -> dict[str, tuple[set, set]]:
    """Per service, the endpoints its settings need that its NetworkPolicies do not allow
    and those they allow that it does not need (services where both are empty left out)."""
    inside = in_cluster_pods(objects)
    deployments = of_kind(objects, "Deployment")
    differences = {}
    for service in SERVICES:
        deployment = deployments[f"yishi-{service}"]
        wanted = {("dns", 53, "UDP"), ("dns", 53, "TCP")}  # every host name is looked up
        for host, port in needed_endpoints(service, environment(objects, deployment)):
            if host in inside:
                wanted.add(("pods", tuple(sorted(inside[host].items())), port, "TCP"))
            else:
                assert "." in host, f"{service}: {host} is neither an operator's Service nor a full name"
                wanted.add(("external", host, port))
        allowed = allowed_egress(objects, pod_labels(deployment))
        if wanted != allowed:
            differences[service] = (wanted - allowed, allowed - wanted)
    return differences


@pytest.mark.parametrize("tree", TREES)
def test_egress_allows_exactly_the_endpoints_each_service_is_configured_with(tree):
    assert egress_differences(rendered(tree)) == {}


def test_the_derivation_knows_every_endpoint_setting():
    for cls, known in ENDPOINT_SETTINGS.items():
        hosts = {f for f in cls.model_fields if re.search(r"(_url|_urls|_host|_bootstrap|_issuer|_origins)$", f)}
        hosts -= {"http_host"}  # where the service listens, not where it connects
        assert hosts == known, f"{cls.__name__}: derive the egress of {hosts - known} in needed_endpoints"


def test_egress_differences_are_found(tmp_path):
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy, ignore=shutil.ignore_patterns("__pycache__"))
    kustomization = copy / "overlays" / "prod" / "kustomization.yaml"
    text = kustomization.read_text(encoding="utf-8")
    # Another issuer and a new SMS gateway, without their policies.
    text = text.replace("REQUIRED-oidc-issuer.invalid/realms", "id.example.org/realms")
    text = text.replace("      - YISHI_NOTIFY_SMTP_HOST=smtp.yishi.example\n",
                        "      - YISHI_NOTIFY_SMTP_HOST=smtp.yishi.example\n"
                        "      - YISHI_NOTIFY_SMS_GATEWAY_URL=https://sms.example.org:8443/send\n")
    kustomization.write_text(text, encoding="utf-8")
    issuer = ({("external", "id.example.org", 443)}, {("external", "required-oidc-issuer.invalid", 443)})
    assert egress_differences(render(kustomization.parent)) == {
        "proposals": issuer, "voting": issuer, "oversight": issuer, "portal": issuer,
        "notify": (issuer[0] | {("external", "sms.example.org", 8443)}, issuer[1])}


def test_the_prod_issuer_is_an_obvious_required_value():
    conf = settings(rendered("overlays/prod"))
    host = urlsplit(conf["YISHI_AUTH_ISSUER"]).hostname
    assert host.endswith(".invalid") and "required" in host  # RFC 2606: never resolves


# -- Kafka -------------------------------------------------------------------------------

def expected_topics(district: str) -> dict[str, str]:
    topics = {}
    for s in SERVICES:
        if s not in READERS:
            topics[names.events_topic(district, s)] = "events"
            topics[names.commands_topic(district, s)] = "commands"
            topics[names.replies_topic(district, s)] = "replies"
            topics[names.dead_letter_topic(names.commands_topic(district, s))] = "dlq"
        for other in CONSUMES[s]:
            topics[names.dead_letter_topic(names.events_topic(district, other))] = "dlq"
    return topics


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_districts_setting_matches_the_included_district_components(overlay):
    objects = rendered(overlay)
    districts = settings(objects)["YISHI_DISTRICTS"].split(",")
    assert districts == EXPECTED_DISTRICTS[overlay]
    labelled = {t["metadata"]["labels"]["yishi.io/district"] for t in of_kind(objects, "KafkaTopic").values()}
    assert labelled == set(districts)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_topics_are_replicated_and_retain_history(overlay):
    objects = rendered(overlay)
    kafka = one(objects, "Kafka")
    districts = settings(objects)["YISHI_DISTRICTS"].split(",")
    wanted = {name: kind for d in districts for name, kind in expected_topics(d).items()}
    topics = {t["spec"]["topicName"]: t for t in of_kind(objects, "KafkaTopic").values()}
    assert set(topics) == set(wanted)
    for name, topic in topics.items():
        spec, config = topic["spec"], topic["spec"]["config"]
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        assert spec["replicas"] == 3, name
        assert config["min.insync.replicas"] == 2, name
        assert config["cleanup.policy"] == "delete", name  # compaction would drop history
        if wanted[name] == "events":
            assert config["retention.ms"] == -1 and config["retention.bytes"] == -1, name
        else:
            assert 0 < config["retention.ms"] < 366 * 24 * 3600 * 1000, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kafka_cluster_requires_tls_scram_and_acls(overlay):
    objects = rendered(overlay)
    kafka = one(objects, "Kafka")
    listeners = kafka["spec"]["kafka"]["listeners"]
    assert all(entry["tls"] is True and entry["authentication"]["type"] == "scram-sha-512" for entry in listeners)
    listener = next(entry for entry in listeners if entry["name"] == "tls")  # the services'
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"
    config = kafka["spec"]["kafka"]["config"]
    assert config["auto.create.topics.enable"] is False
    assert config["default.replication.factor"] == 3 and config["min.insync.replicas"] == 2
    pools = of_kind(objects, "KafkaNodePool")
    assert all(p["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"] for p in pools.values())
    assert sum(p["spec"]["replicas"] for p in pools.values() if "broker" in p["spec"]["roles"]) >= 3
    assert sum(p["spec"]["replicas"] for p in pools.values() if "controller" in p["spec"]["roles"]) % 2 == 1

    conf = settings(objects)
    assert conf["YISHI_KAFKA_BOOTSTRAP"] == f"{kafka['metadata']['name']}-kafka-bootstrap:{listener['port']}"
    assert conf["YISHI_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert conf["YISHI_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"


def allowed(user: Obj, resource_type: str, name: str, operation: str) -> bool:
    for acl in user["spec"]["authorization"]["acls"]:
        res = acl["resource"]
        if res["type"] != resource_type or operation not in acl["operations"] or acl.get("type", "allow") != "allow":
            continue
        if res["patternType"] == "literal" and res["name"] == name:
            return True
        if res["patternType"] == "prefix" and name.startswith(res["name"]):
            return True
    return False


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_principal_may_do_what_it_needs_and_no_more(overlay):
    objects = rendered(overlay)
    users = of_kind(objects, "KafkaUser")
    districts = settings(objects)["YISHI_DISTRICTS"].split(",")
    topics = {t["spec"]["topicName"] for t in of_kind(objects, "KafkaTopic").values()}
    for service in SERVICES:
        user = users[f"yishi-{service}"]
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        assert allowed(user, "group", f"yishi.{service}.events", "Read")
        assert not allowed(user, "group", f"yishi.{'voting' if service != 'voting' else 'notify'}.x", "Read")
        writes, reads = set(), set()
        for d in districts:
            if service not in READERS:  # a reader has no topics of its own
                writes |= {names.events_topic(d, service), names.replies_topic(d, service),
                           names.dead_letter_topic(names.commands_topic(d, service))}
                reads.add(names.commands_topic(d, service))
            for other in CONSUMES[service]:
                reads.add(names.events_topic(d, other))
                writes.add(names.dead_letter_topic(names.events_topic(d, other)))
        for topic in writes:
            assert allowed(user, "topic", topic, "Write"), (service, topic)
        for topic in reads:
            assert allowed(user, "topic", topic, "Read"), (service, topic)
        for topic in topics - writes:
            own = topic.split(".")[1] == service  # its own namespace, e.g. its commands topic
            assert own or not allowed(user, "topic", topic, "Write"), (service, topic)
        for topic in topics - reads:
            own = topic.split(".")[1] == service
            assert own or not allowed(user, "topic", topic, "Read"), (service, topic)
        for acl in user["spec"]["authorization"]["acls"]:
            assert acl["resource"]["type"] in {"topic", "group"}
            if acl["resource"]["type"] == "topic":
                assert acl["resource"]["name"].split(".")[0] in districts


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_districts_own_systems_see_only_their_district(overlay):
    objects = rendered(overlay)
    users = of_kind(objects, "KafkaUser")
    districts = settings(objects)["YISHI_DISTRICTS"].split(",")
    topics = {t["spec"]["topicName"] for t in of_kind(objects, "KafkaTopic").values()}
    assert set(users) == {f"yishi-{s}" for s in SERVICES} | {f"{d}-integration" for d in districts}
    for d in districts:
        user = users[f"{d}-integration"]
        for topic in topics:
            mine = topic.startswith(f"{d}.")
            kind = topic.split(".", 2)[2]
            assert allowed(user, "topic", topic, "Write") == (mine and kind == "commands"), topic
            assert allowed(user, "topic", topic, "Read") == (mine and kind in {"events", "replies"}), topic
        assert all(acl["resource"]["name"].startswith(f"{d}.") for acl in user["spec"]["authorization"]["acls"])


# -- PostgreSQL, Secrets, ConfigMaps ------------------------------------------------------

@pytest.mark.parametrize("tree", TREES)
def test_each_service_has_its_own_database_and_role(tree):
    objects = rendered(tree)
    cluster = one(objects, "Cluster")
    expected_instances = 1 if tree == "overlays/dev" else 3
    assert cluster["spec"]["instances"] == expected_instances
    roles = {r["name"]: r for r in cluster["spec"]["managed"]["roles"]}
    databases = {d["spec"]["name"]: d["spec"] for d in of_kind(objects, "Database").values()}
    assert set(databases) == set(SERVICES)
    deployments = of_kind(objects, "Deployment")
    for service in SERVICES:
        db = databases[service]
        assert db["cluster"]["name"] == cluster["metadata"]["name"]
        assert db.get("databaseReclaimPolicy", "retain") == "retain"
        role = roles[db["owner"]]
        assert role["login"] is True
        env = env_of(deployments[f"yishi-{service}"]["spec"]["template"]["spec"]["containers"][0])
        url = urlsplit(env["YISHI_DATABASE_URL"]["value"])
        assert url.scheme == "postgresql" and url.password is None
        assert url.hostname == f"{cluster['metadata']['name']}-rw" and url.port == 5432
        assert url.username == db["owner"] and url.path == f"/{service}"
        assert parse_qs(url.query)["sslmode"] == ["verify-full"]
        assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": role["passwordSecret"]["name"], "key": "password"}


def secret_references(pod: Obj) -> set[tuple[str, bool]]:
    """(secret name, optional) for every Secret a pod spec uses."""
    refs = set()
    for container in pod["containers"]:
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                refs.add((source["secretRef"]["name"], source["secretRef"].get("optional", False)))
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                refs.add((ref["name"], ref.get("optional", False)))
    for volume in pod.get("volumes", []):
        if "secret" in volume:
            refs.add((volume["secret"]["secretName"], volume["secret"].get("optional", False)))
    return refs


@pytest.mark.parametrize("tree", TREES)
def test_every_referenced_secret_and_configmap_has_a_source(tree):
    objects = rendered(tree)
    kafka, pg = one(objects, "Kafka"), one(objects, "Cluster")
    config_maps = set(of_kind(objects, "ConfigMap"))
    from_operators = (
        set(of_kind(objects, "KafkaUser"))  # Strimzi: one Secret per KafkaUser, same name
        | {f"{kafka['metadata']['name']}-cluster-ca-cert", f"{pg['metadata']['name']}-ca"}
    )
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    for name, deployment in of_kind(objects, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        for container in pod["containers"]:
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in config_maps
        for secret, optional in secret_references(pod):
            assert secret in from_operators | OPS_SECRETS or optional, f"{name}: where does Secret {secret} come from?"
        env = env_of(pod["containers"][0])
        assert env["YISHI_KAFKA_SASL_USERNAME"]["value"] == name
        assert env["YISHI_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": name, "key": "password"}
    for pattern in ("yishi-pg-SERVICE", "yishi-SERVICE-signing-key", "yishi-SERVICE-env"):
        assert pattern in readme, f"deploy/README.md does not say where {pattern} comes from"
    for role in pg["spec"]["managed"]["roles"]:
        assert role["passwordSecret"]["name"] in OPS_SECRETS


@pytest.mark.parametrize("tree", TREES)
def test_no_image_floats(tree):
    images = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in {"image", "imageName"} and isinstance(value, str):
                    images.append(value)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(rendered(tree))
    assert images
    assert all(image_ok(i) for i in images), images


# -- districts ---------------------------------------------------------------------------

def test_committed_district_folders_are_what_the_generator_writes():
    generator = load_generator()
    assert generator.stale() == [], "run: python deploy/new_district.py NAME"
    assert dict(generator.CONSUMES) == CONSUMES
    assert generator.SERVICES + generator.READERS == names.RUNNABLE == SERVICES
    assert generator.READERS == names.READERS == READERS


@pytest.mark.parametrize("name", ["gulou", "chaoyang", "a", "x-1", "Gulou", "1st", "-a", "a_b", "a" * 41])
def test_generator_accepts_the_district_names_the_platform_accepts(name):
    generator = load_generator()
    try:
        names.check_district(name)
        valid = True
    except names.InvalidName:
        valid = False
    if valid:
        generator.render(name)
    else:
        with pytest.raises(ValueError):
            generator.render(name)


def test_a_new_district_renders_and_validates(tmp_path):
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy, ignore=shutil.ignore_patterns("__pycache__"))
    load_generator().write("haidian", root=copy / "districts")
    kustomization = copy / "overlays" / "prod" / "kustomization.yaml"
    text = kustomization.read_text(encoding="utf-8")
    text = text.replace("  - ../../districts/chaoyang\n", "  - ../../districts/chaoyang\n  - ../../districts/haidian\n")
    text = text.replace("YISHI_DISTRICTS=gulou,chaoyang", "YISHI_DISTRICTS=gulou,chaoyang,haidian")
    kustomization.write_text(text, encoding="utf-8")
    objects = render(kustomization.parent)
    assert kubernetes_errors(objects) == []
    topics = {t["spec"]["topicName"] for t in of_kind(objects, "KafkaTopic").values()}
    assert set(expected_topics("haidian")) <= topics
    assert "haidian-integration" in of_kind(objects, "KafkaUser")
    voting = of_kind(objects, "KafkaUser")["yishi-voting"]
    assert allowed(voting, "topic", "haidian.voting.events", "Write")
    assert allowed(voting, "topic", "haidian.proposals.events", "Read")


def test_create_secrets_script_makes_the_secrets_the_pods_use():
    script = DEPLOY / "create-secrets.sh"
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    text = script.read_text(encoding="utf-8")
    assert 'db_secret="yishi-pg-$service"' in text and 'key_secret="yishi-$service-signing-key"' in text
    assert "--type=kubernetes.io/basic-auth" in text and "--from-literal=username=\"$service\"" in text
    assert "--from-file=signing-key.pem=" in text
    assert "services=(proposals voting oversight notify portal)" in text
