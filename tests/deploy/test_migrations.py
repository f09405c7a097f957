"""The schema migrations in the rendered manifests: one Job per service runs `yishi
migrate SERVICE` with the release's image on the service's own database and role, as
hardened as the services' pods, and may reach only PostgreSQL and DNS."""

from __future__ import annotations

import pytest

from tests.deploy.manifests import SERVICES, TREES, rendered
from tests.deploy.test_policies import env_of, of_kind, selects


@pytest.mark.parametrize("tree", TREES)
def test_each_service_has_a_migration_job_on_its_own_database(tree):
    objects = rendered(tree)
    jobs, deployments = of_kind(objects, "Job"), of_kind(objects, "Deployment")
    assert set(jobs) == {f"yishi-migrate-{s}" for s in SERVICES}
    for service in SERVICES:
        pod = jobs[f"yishi-migrate-{service}"]["spec"]["template"]["spec"]
        app = deployments[f"yishi-{service}"]["spec"]["template"]["spec"]["containers"][0]
        (container,) = pod["containers"]
        assert container["command"] + container["args"] == ["yishi", "migrate", service]
        assert container["image"] == app["image"]
        env, app_env = env_of(container), env_of(app)
        for name in ("YISHI_DATABASE_URL", "PGPASSWORD"):
            assert env[name] == app_env[name], (service, name)
        assert pod["restartPolicy"] == "Never"
        assert pod["securityContext"]["runAsNonRoot"] is True
        hardened = container["securityContext"]
        assert hardened["readOnlyRootFilesystem"] is True and hardened["allowPrivilegeEscalation"] is False
        assert hardened["capabilities"] == {"drop": ["ALL"]}
        assert container["resources"]["limits"]


@pytest.mark.parametrize("tree", TREES)
def test_migration_pods_reach_only_postgres_and_dns(tree):
    objects = rendered(tree)
    pg = next(o for o in objects if o["kind"] == "Cluster")
    for job in of_kind(objects, "Job").values():
        labels = job["spec"]["template"]["metadata"]["labels"]
        policies = [p["spec"] for p in of_kind(objects, "NetworkPolicy").values()
                    if selects(p["spec"]["podSelector"], labels)]
        assert len(policies) == 1, job["metadata"]["name"]
        policy = policies[0]
        assert policy["policyTypes"] == ["Ingress", "Egress"] and not policy.get("ingress")
        peers = {(port["port"], port["protocol"]): peer["podSelector"]["matchLabels"]
                 for rule in policy["egress"] for peer in rule["to"] for port in rule["ports"]}
        assert peers == {(5432, "TCP"): {"cnpg.io/cluster": pg["metadata"]["name"]},
                         (53, "UDP"): {"k8s-app": "kube-dns"}, (53, "TCP"): {"k8s-app": "kube-dns"}}
