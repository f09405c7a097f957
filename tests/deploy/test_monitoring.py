"""Monitoring as rendered: the Prometheus Operator objects have the operator's documented
shape (its CRDs are not in ../shared/crds, so the schema below is written from the
operator's API reference, monitoring.coreos.com/v1, strict like the others), they scrape
every service and Strimzi's Kafka exporter, the alerts the issue asks for exist, and every
alert and every dashboard panel queries only metrics that are exported: by the services
(read from a service's own registry) or by the Kafka exporter."""

from __future__ import annotations

import json
import re

import httpx
import jsonschema
import pytest

from tests.deploy.manifests import DEPLOY, OVERLAYS, SERVICES, TREES, Obj, rendered

DASHBOARDS = sorted((DEPLOY / "dashboards").glob("*.json"))
# What Strimzi's Kafka exporter (kafka_exporter) exports that the alerts and panels use.
KAFKA_EXPORTER = frozenset({"kafka_consumergroup_lag", "kafka_consumergroup_current_offset",
                            "kafka_topic_partition_current_offset", "kafka_brokers"})
REQUIRED_ALERTS = {"YishiRelayStalled", "YishiConsumerLagGrowing", "YishiDeadLetters", "YishiDeliveryFailures",
                   "YishiCheckpointNotSigned"}
# What the issue asks to see: HTTP requests, relay lag and publish latency, consumer lag,
# dead letters, deliveries by channel and outcome, timers fired, and the Kafka signal.
REQUIRED_ON_DASHBOARD = {"http_requests_total", "yishi_relay_lag_events", "yishi_relay_lag_seconds",
                         "yishi_relay_publish_seconds_bucket", "kafka_consumergroup_lag",
                         "yishi_consumer_dead_letters_total", "yishi_notify_deliveries_total",
                         "yishi_timers_fired_total", "yishi_kafka_up", "yishi_checkpoint_unsigned_events"}

# -- the operator's documented schema (the fields used here and their neighbours) --------

_DURATION = {"type": "string", "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?"
                                          r"(([0-9]+)s)?(([0-9]+)ms)?)$"}
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_SELECTOR = {"type": "object", "additionalProperties": False, "properties": {
    "matchLabels": _STRING_MAP,
    "matchExpressions": {"type": "array", "items": {
        "type": "object", "additionalProperties": False, "required": ["key", "operator"],
        "properties": {"key": {"type": "string"}, "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                       "values": {"type": "array", "items": {"type": "string"}}}}}}}
_RELABELINGS = {"type": "array", "items": {"type": "object"}}
_ENDPOINT = {
    "port": {"type": "string"}, "path": {"type": "string"}, "scheme": {"enum": ["http", "https"]},
    "interval": _DURATION, "scrapeTimeout": _DURATION, "honorLabels": {"type": "boolean"},
    "honorTimestamps": {"type": "boolean"}, "relabelings": _RELABELINGS, "metricRelabelings": _RELABELINGS,
    "params": {"type": "object"}, "followRedirects": {"type": "boolean"}, "enableHttp2": {"type": "boolean"},
    "filterRunning": {"type": "boolean"}, "tlsConfig": {"type": "object"}, "authorization": {"type": "object"},
}
_METADATA = {"type": "object", "required": ["name"],
             "properties": {"name": {"type": "string"}, "namespace": {"type": "string"}, "labels": _STRING_MAP,
                            "annotations": _STRING_MAP}}
_SPEC_COMMON = {"selector": _SELECTOR, "jobLabel": {"type": "string"},
                "namespaceSelector": {"type": "object", "additionalProperties": False, "properties": {
                    "any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}}},
                "sampleLimit": {"type": "integer", "minimum": 0}, "podTargetLabels": {"type": "array"}}


def _kind(kind: str, spec: dict) -> dict:
    return {"type": "object", "additionalProperties": False, "required": ["apiVersion", "kind", "metadata", "spec"],
            "properties": {"apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": kind},
                           "metadata": _METADATA, "spec": spec}}


SCHEMAS = {
    "ServiceMonitor": _kind("ServiceMonitor", {
        "type": "object", "additionalProperties": False, "required": ["selector", "endpoints"],
        "properties": {**_SPEC_COMMON, "targetLabels": {"type": "array"},
                       "endpoints": {"type": "array", "minItems": 1, "items": {
                           "type": "object", "additionalProperties": False,
                           "properties": {**_ENDPOINT, "targetPort": {"type": ["integer", "string"]}}}}}}),
    "PodMonitor": _kind("PodMonitor", {
        "type": "object", "additionalProperties": False, "required": ["selector", "podMetricsEndpoints"],
        "properties": {**_SPEC_COMMON,
                       "podMetricsEndpoints": {"type": "array", "minItems": 1, "items": {
                           "type": "object", "additionalProperties": False,
                           "properties": {**_ENDPOINT, "portNumber": {"type": "integer"}}}}}}),
    "PrometheusRule": _kind("PrometheusRule", {
        "type": "object", "additionalProperties": False, "required": ["groups"],
        "properties": {"groups": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["name", "rules"],
            "properties": {"name": {"type": "string", "minLength": 1}, "interval": _DURATION,
                           "query_offset": _DURATION, "limit": {"type": "integer"}, "labels": _STRING_MAP,
                           "partial_response_strategy": {"type": "string"},
                           "rules": {"type": "array", "items": {
                               "type": "object", "additionalProperties": False, "required": ["expr"],
                               "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                               "properties": {"alert": {"type": "string"}, "record": {"type": "string"},
                                              "expr": {"type": ["string", "integer"]}, "for": _DURATION,
                                              "keep_firing_for": _DURATION, "labels": _STRING_MAP,
                                              "annotations": _STRING_MAP}}}}}}}}),
}


def monitoring(objects: list[Obj]) -> list[Obj]:
    return [o for o in objects if o.get("apiVersion", "").startswith("monitoring.coreos.com/")]


def schema_errors(objects: list[Obj]) -> list[str]:
    errors = []
    for obj in monitoring(objects):
        schema = SCHEMAS.get(obj["kind"])
        if schema is None:
            errors.append(f"{obj['kind']}: no schema here")
            continue
        for error in jsonschema.Draft7Validator(schema).iter_errors(obj):
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {list(error.absolute_path)}: {error.message}")
    return errors


# -- metric names -------------------------------------------------------------------------

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_METRIC = re.compile(r"\b((?:yishi|http|faststream|kafka)_[a-z0-9_]+)\b")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (those of this platform and its exporters)."""
    return set(_METRIC.findall(_STRINGS.sub('""', expr)))


def exported_by_services() -> set[str]:
    """Every sample name a service's /metrics can carry, from the registry of a service app
    (built without servers; one request makes the HTTP instrumentation register)."""
    import asyncio

    from prometheus_client import REGISTRY

    from services.notify.main import spec as notify_spec
    from services.oversight.main import spec as oversight_spec
    from services.voting.main import spec as voting_spec
    from tests.support.auth import auth_settings
    from yishi.runtime import create_app
    from yishi.settings import Settings

    settings = Settings(database_url="postgresql://nobody@127.0.0.1:1/none", kafka_bootstrap="127.0.0.1:1",
                        log_json=False, **auth_settings())
    for spec in (voting_spec(), oversight_spec(), notify_spec()):
        app = create_app(spec, settings)

        async def hit(app=app) -> None:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
                await client.get("/healthz")

        asyncio.run(hit())
    names = set()
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
                "summary": ("_count", "_sum", "_created"), "gauge": ("",), "info": ("_info",)}
    for family in REGISTRY.collect():
        names |= {family.name + s for s in suffixes.get(family.type, ("",))}
    return names


@pytest.fixture(scope="module")
def exported() -> set[str]:
    return exported_by_services() | KAFKA_EXPORTER


def alert_rules(objects: list[Obj]) -> list[dict]:
    return [rule for o in objects if o["kind"] == "PrometheusRule" for g in o["spec"]["groups"] for rule in g["rules"]]


def dashboard_exprs(dashboard: dict) -> list[tuple[str, str]]:
    def walk(panels):
        for panel in panels:
            yield from ((panel["title"], t["expr"]) for t in panel.get("targets", []))
            yield from walk(panel.get("panels", []))
    return list(walk(dashboard["panels"]))


# -- the tests ----------------------------------------------------------------------------

@pytest.mark.parametrize("tree", TREES)
def test_monitoring_objects_have_the_operators_shape(tree):
    objects = rendered(tree)
    assert {o["kind"] for o in monitoring(objects)} == {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
    assert schema_errors(objects) == []


@pytest.mark.parametrize(("path", "value", "expected"), [
    (("spec", "endpoints", 0, "honorLabels"), "yes", "'yes' is not of type 'boolean'"),
    (("spec", "endpoints", 0, "interval"), "30 seconds", "does not match"),
    (("spec", "endpoints", 0, "honourLabels"), True, "'honourLabels' was unexpected"),
], ids=["wrong-type", "bad-duration", "unknown-field"])
def test_the_monitoring_schema_bites(path, value, expected):
    objects = rendered("overlays/prod")
    monitor = next(o for o in objects if o["kind"] == "ServiceMonitor")
    target = monitor
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    errors = schema_errors(objects)
    assert errors and all(expected in e for e in errors), errors


@pytest.mark.parametrize("tree", OVERLAYS)
def test_every_service_and_the_kafka_exporter_are_scraped(tree):
    objects = rendered(tree)
    monitor = next(o for o in objects if o["kind"] == "ServiceMonitor")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics" and endpoint["honorLabels"] is True
    (expression,) = monitor["spec"]["selector"]["matchExpressions"]
    selected = [o for o in objects if o["kind"] == "Service"
                and o["metadata"]["labels"].get(expression["key"]) in expression["values"]]
    assert sorted(s["metadata"]["name"] for s in selected) == sorted(f"yishi-{s}" for s in SERVICES)
    for service in selected:
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}

    kafka = next(o for o in objects if o["kind"] == "Kafka")
    assert "kafkaExporter" in kafka["spec"]
    exporter = next(o for o in objects if o["kind"] == "PodMonitor")
    # The labels and port Strimzi gives the exporter's pod: <cluster>-kafka-exporter, tcp-prometheus.
    assert exporter["spec"]["selector"]["matchLabels"] == {
        "strimzi.io/cluster": kafka["metadata"]["name"], "strimzi.io/kind": "Kafka",
        "strimzi.io/name": f"{kafka['metadata']['name']}-kafka-exporter"}
    assert [e["port"] for e in exporter["spec"]["podMetricsEndpoints"]] == ["tcp-prometheus"]


def test_the_alerts_asked_for_exist_and_say_how_bad_and_what(exported):
    rules = alert_rules(rendered("overlays/prod"))
    assert {r["alert"] for r in rules} >= REQUIRED_ALERTS
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]


def test_every_alert_reads_metrics_that_are_exported(exported):
    for rule in alert_rules(rendered("overlays/prod")):
        names = metric_names(rule["expr"])
        assert names, f"{rule['alert']} reads no known metric: {rule['expr']}"
        assert names <= exported, f"{rule['alert']} reads {sorted(names - exported)}, which nothing exports"


def test_every_dashboard_panel_reads_metrics_that_are_exported(exported):
    assert DASHBOARDS, "no dashboard in deploy/dashboards"
    shown = set()
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        exprs = dashboard_exprs(dashboard)
        assert exprs, f"{path.name} has no queries"
        for title, expr in exprs:
            names = metric_names(expr)
            assert names, f"{path.name}: panel {title!r} reads no known metric"
            assert names <= exported, f"{path.name}: panel {title!r} reads {sorted(names - exported)}"
            shown |= names
    assert REQUIRED_ON_DASHBOARD <= shown, sorted(REQUIRED_ON_DASHBOARD - shown)


def test_the_names_check_bites(exported):
    assert metric_names('sum(rate(yishi_relay_publishd_total{service="yishi_x"}[5m]))') == {"yishi_relay_publishd_total"}
    assert not metric_names("yishi_relay_publishd_total") <= exported
    assert metric_names("max by (service) (yishi_relay_lag_seconds) > 120") <= exported
