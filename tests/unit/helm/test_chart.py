"""The Helm chart, rendered by the pinned helm: lint, RBAC shape in both watch modes, the
operator Deployment, PDB, metrics objects, CRDs, and the values schema."""

from __future__ import annotations

import re
import tomllib
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetune.api import KINDS
from kubetune.crd import build_crd
from support.helm import CHART, KUBE_VERSION, NAMESPACE, RELEASE, helm, render, render_text

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
NAME = f"{RELEASE}-kubetune"
WATCHED = ("team-a", "team-b")
WATCH_ARGS = ("--set", "watchNamespaces={" + ",".join(WATCHED) + "}")
MANAGED = {"get", "list", "watch", "create", "patch", "delete"}
# What the operator does with the API (the operator contract), as (group, resource) -> verbs.
OPERATOR_PERMISSIONS: dict[tuple[str, str], set[str]] = {
    ("kubetune.io", "finetunejobs"): {"get", "list", "watch", "patch", "update"},
    ("kubetune.io", "adapters"): {"get", "list", "watch", "patch", "update", "create"},
    ("kubetune.io", "inferencedeployments"): {"get", "list", "watch", "patch", "update"},
    **{("kubetune.io", f"{k.plural}/status"): {"get", "patch", "update"} for k in KINDS},
    **{("kubetune.io", f"{k.plural}/finalizers"): {"update"} for k in KINDS},
    ("batch", "jobs"): MANAGED,
    ("", "pods"): {"get", "list", "watch"},
    ("", "configmaps"): MANAGED,
    ("", "services"): MANAGED,
    ("apps", "deployments"): MANAGED,
    ("gateway.networking.k8s.io", "httproutes"): MANAGED,
    ("", "secrets"): {"get"},
    ("", "events"): {"create", "patch"},
    ("events.k8s.io", "events"): {"create", "patch"},
}
CLUSTER_PERMISSIONS = {
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"get", "list", "watch"}
}


def find(objects: list[dict[str, Any]], kind: str, name: str, namespace: str | None = None) -> dict:
    (match,) = [
        o
        for o in objects
        if o["kind"] == kind
        and o["metadata"]["name"] == name
        and o["metadata"].get("namespace") == namespace
    ]
    return match


def kinds(objects: list[dict[str, Any]]) -> set[tuple[str, str, str | None]]:
    return {(o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")) for o in objects}


def permissions(rules: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    """(group, resource) -> verbs granted without a resourceNames restriction."""
    granted: dict[tuple[str, str], set[str]] = defaultdict(set)
    for rule in rules:
        if "resourceNames" in rule:
            continue
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted[group, resource] |= set(rule["verbs"])
    return dict(granted)


def operator_rules(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every rule of every Role and ClusterRole bound to the operator's ServiceAccount."""
    bound = {
        (b["roleRef"]["kind"], b["roleRef"]["name"], b["metadata"].get("namespace"))
        for b in objects
        if b["kind"] in {"RoleBinding", "ClusterRoleBinding"}
        and {"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE} in b["subjects"]
    }
    return [
        rule
        for o in objects
        if o["kind"] in {"Role", "ClusterRole"}
        and (o["kind"], o["metadata"]["name"], o["metadata"].get("namespace"))
        in {(k, n, ns if k == "Role" else None) for k, n, ns in bound}
        for rule in o["rules"]
    ]


@pytest.fixture(scope="module")
def default() -> list[dict[str, Any]]:
    return render()


@pytest.fixture(scope="module")
def watching() -> list[dict[str, Any]]:
    return render(*WATCH_ARGS)


@pytest.mark.parametrize("values", [(), WATCH_ARGS], ids=["default", "watchNamespaces"])
def test_lint(values: tuple[str, ...]) -> None:
    result = helm("lint", "--strict", str(CHART), *values)
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_app_version_is_the_distribution_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"] == "0.1.0"


def test_default_objects(default: list[dict[str, Any]]) -> None:
    assert kinds(default) == {
        *(("CustomResourceDefinition", f"{k.plural}.kubetune.io", None) for k in KINDS),
        ("ServiceAccount", NAME, NAMESPACE),
        ("ClusterRole", NAME, None),
        ("ClusterRoleBinding", NAME, None),
        ("ClusterRole", f"{NAME}-cluster", None),
        ("ClusterRoleBinding", f"{NAME}-cluster", None),
        ("ClusterRole", f"{NAME}-edit", None),
        ("ClusterRole", f"{NAME}-view", None),
        ("Role", f"{NAME}-leader-election", NAMESPACE),
        ("RoleBinding", f"{NAME}-leader-election", NAMESPACE),
        ("Deployment", NAME, NAMESPACE),
        ("PodDisruptionBudget", NAME, NAMESPACE),
        ("Service", f"{NAME}-metrics", NAMESPACE),
    }


def test_cluster_wide_rbac(default: list[dict[str, Any]]) -> None:
    namespaced = find(default, "ClusterRole", NAME)
    assert permissions(namespaced["rules"]) == OPERATOR_PERMISSIONS
    cluster = find(default, "ClusterRole", f"{NAME}-cluster")
    assert permissions(cluster["rules"]) == CLUSTER_PERMISSIONS
    for name in (NAME, f"{NAME}-cluster"):
        binding = find(default, "ClusterRoleBinding", name)
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": name,
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}
        ]


def test_watch_namespaces_rbac(watching: list[dict[str, Any]]) -> None:
    """No cluster-wide grant but the CRD read; each watched namespace gets a Role with
    exactly the cluster-wide mode's rules."""
    assert ("ClusterRole", NAME, None) not in kinds(watching)
    assert ("ClusterRoleBinding", NAME, None) not in kinds(watching)
    cluster_roles = [o for o in watching if o["kind"] == "ClusterRole"]
    bound = {b["roleRef"]["name"] for b in watching if b["kind"] == "ClusterRoleBinding"}
    assert bound == {f"{NAME}-cluster"}
    assert permissions(find(cluster_roles, "ClusterRole", f"{NAME}-cluster")["rules"]) == (
        CLUSTER_PERMISSIONS
    )
    roles = {o["metadata"]["namespace"] for o in watching if o["kind"] == "Role"}
    assert roles == {*WATCHED, NAMESPACE}  # the release namespace holds only the Lease Role
    for namespace in WATCHED:
        role = find(watching, "Role", NAME, namespace)
        assert permissions(role["rules"]) == OPERATOR_PERMISSIONS
        binding = find(watching, "RoleBinding", NAME, namespace)
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["roleRef"]["name"] == NAME
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}
        ]
    env = container(watching)["env"]
    assert {"name": "KUBETUNE_NAMESPACES", "value": "team-a,team-b"} in env


@pytest.mark.parametrize("values", [(), WATCH_ARGS], ids=["default", "watchNamespaces"])
def test_operator_is_never_granted_what_it_must_not_do(values: tuple[str, ...]) -> None:
    rules = operator_rules(render(*values))
    assert rules
    for rule in rules:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
        assert "rbac.authorization.k8s.io" not in rule["apiGroups"]
        assert "nodes" not in rule["resources"]
        if "secrets" in rule["resources"]:
            assert rule["verbs"] == ["get"]  # never list or watch: only what a spec names


def test_lease_is_the_only_thing_in_the_release_namespace(default: list[dict[str, Any]]) -> None:
    role = find(default, "Role", f"{NAME}-leader-election", NAMESPACE)
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["kubetune-operator"],
            "verbs": ["get", "update"],
        },
    ]


@pytest.mark.parametrize("values", [(), WATCH_ARGS], ids=["default", "watchNamespaces"])
def test_every_operator_rule_says_why(values: tuple[str, ...]) -> None:
    """Each rule of the operator's Roles and ClusterRoles follows a comment line."""
    documents = render_text(*values).split("\n---\n")
    roles = [d for d in documents if re.search(r"^kind: (Cluster)?Role$", d, re.MULTILINE)]
    assert roles
    for document in roles:
        if "aggregate-to" in document:
            continue  # for people, not the operator
        lines = document.splitlines()
        for index, line in enumerate(lines):
            if line.lstrip().startswith("- apiGroups:"):
                assert lines[index - 1].lstrip().startswith("#"), f"{line!r} in\n{document}"


def test_aggregated_roles_give_people_no_status(default: list[dict[str, Any]]) -> None:
    edit = find(default, "ClusterRole", f"{NAME}-edit")
    view = find(default, "ClusterRole", f"{NAME}-view")
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    for role in (edit, view):
        (rule,) = role["rules"]
        assert rule["resources"] == ["finetunejobs", "adapters", "inferencedeployments"]
    assert ("ClusterRole", f"{NAME}-edit", None) not in kinds(
        render("--set", "rbac.aggregateToDefaultRoles=false")
    )


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (operator,) = find(objects, "Deployment", NAME, NAMESPACE)["spec"]["template"]["spec"][
        "containers"
    ]
    return operator


def test_deployment(default: list[dict[str, Any]]) -> None:
    deployment = find(default, "Deployment", NAME, NAMESPACE)
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    assert spec["replicas"] == 2
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    assert pod["serviceAccountName"] == NAME
    assert pod["automountServiceAccountToken"] is True
    operator = container(default)
    assert operator["image"] == "ghcr.io/kubetune/operator:0.1.0"
    assert operator["resources"]["requests"].keys() == {"cpu", "memory"}
    assert operator["resources"]["limits"]["memory"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert operator["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert "emptyDir" in volumes["tmp"]


def test_restricted_security_context(default: list[dict[str, Any]]) -> None:
    pod = find(default, "Deployment", NAME, NAMESPACE)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    context = container(default)["securityContext"]
    assert context == {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def test_environment_follows_the_operator_contract(default: list[dict[str, Any]]) -> None:
    env = {e["name"]: e for e in container(default)["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert {k: v.get("value") for k, v in env.items() if k.startswith("KUBETUNE_")} == {
        "KUBETUNE_NAMESPACES": "",
        "KUBETUNE_LEADER_ELECTION": "true",
        "KUBETUNE_LOG_FORMAT": "json",
        "KUBETUNE_METRICS_PORT": "8080",
        "KUBETUNE_HEALTH_PORT": "8081",
        "KUBETUNE_TRAINER_IMAGE": "ghcr.io/kubetune/trainer:0.1.0",
        "KUBETUNE_RUNTIME_IMAGE": "ghcr.io/kubetune/runtime:0.1.0",
        "KUBETUNE_S3_ENDPOINT": "",
        "KUBETUNE_S3_REGION": "",
        "KUBETUNE_VLLM_IMAGE": "",
        "KUBETUNE_PROMETHEUS_URL": "",
        "KUBETUNE_VALIDATION_NODE_SELECTOR": "{}",
        "KUBETUNE_VALIDATION_TOLERATIONS": "[]",
    }


def test_the_operator_reads_what_the_chart_sets() -> None:
    """The chart's environment, parsed by the operator's own Settings."""
    from kubetune.settings import Settings

    objects = render(
        "--set", "defaults.validation.nodeSelector.kubetune\\.io/pool=cpu",
        "--set", "defaults.prometheusUrl=http://prometheus:9090",
        "--set", "defaults.s3.endpoint=http://minio:9000",
        "--set", "watchNamespaces={team-a,team-b}",
        "--set", "defaults.s3.retrySeconds=45",
    )  # fmt: skip
    env = {e["name"]: e["value"] for e in container(objects)["env"] if "value" in e}
    settings = Settings.from_env(env)
    assert settings.training.validation_node_selector == {"kubetune.io/pool": "cpu"}
    assert settings.rollout.prometheus_url == "http://prometheus:9090"
    assert settings.storage.endpoint == "http://minio:9000"
    assert settings.process.namespaces == ("team-a", "team-b")
    assert settings.training.s3_retry_seconds == 45
    assert settings.images.vllm == Settings().images.vllm  # empty value: the built-in default


@pytest.mark.parametrize(("health", "metrics"), [(8081, 8080), (9443, 9090)])
def test_probes_use_the_health_port(health: int, metrics: int) -> None:
    objects = render(
        "--set", f"operator.healthPort={health}", "--set", f"operator.metricsPort={metrics}"
    )
    operator = container(objects)
    ports = {p["name"]: p["containerPort"] for p in operator["ports"]}
    assert ports == {"health": health, "metrics": metrics}
    paths = {
        probe: operator[probe]["httpGet"]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert paths == {
        "startupProbe": {"path": "/healthz", "port": "health"},
        "livenessProbe": {"path": "/healthz", "port": "health"},
        "readinessProbe": {"path": "/readyz", "port": "health"},
    }
    env = {e["name"]: e.get("value") for e in operator["env"]}
    assert env["KUBETUNE_HEALTH_PORT"] == str(health)
    assert env["KUBETUNE_METRICS_PORT"] == str(metrics)
    service = find(objects, "Service", f"{NAME}-metrics", NAMESPACE)
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"


def test_pod_disruption_budget(default: list[dict[str, Any]]) -> None:
    pdb = find(default, "PodDisruptionBudget", NAME, NAMESPACE)
    deployment = find(default, "Deployment", NAME, NAMESPACE)
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    assert pdb["spec"]["maxUnavailable"] == 1
    disabled = render("--set", "podDisruptionBudget.enabled=false")
    assert "PodDisruptionBudget" not in {o["kind"] for o in disabled}


def test_service_monitor_only_when_enabled(default: list[dict[str, Any]]) -> None:
    assert "ServiceMonitor" not in {o["kind"] for o in default}
    objects = render(
        "--set", "metrics.serviceMonitor.enabled=true",
        "--set", "metrics.serviceMonitor.labels.release=prometheus",
    )  # fmt: skip
    monitor = find(objects, "ServiceMonitor", NAME, NAMESPACE)
    service = find(objects, "Service", f"{NAME}-metrics", NAMESPACE)
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}


def test_single_replica_without_leader_election() -> None:
    objects = render("--set", "replicaCount=1", "--set", "operator.leaderElection=false")
    assert find(objects, "Deployment", NAME, NAMESPACE)["spec"]["replicas"] == 1
    assert ("Role", f"{NAME}-leader-election", NAMESPACE) not in kinds(objects)
    env = {e["name"]: e.get("value") for e in container(objects)["env"]}
    assert env["KUBETUNE_LEADER_ELECTION"] == "false"


def test_crds_are_the_generated_ones_kept_on_uninstall(default: list[dict[str, Any]]) -> None:
    rendered = {
        o["metadata"]["name"]: o for o in default if o["kind"] == "CustomResourceDefinition"
    }
    for kind in KINDS:
        generated = build_crd(kind)
        crd = rendered[generated["metadata"]["name"]]
        assert crd["spec"] == generated["spec"]
        assert crd["metadata"]["annotations"] == {
            "helm.sh/resource-policy": "keep",  # helm uninstall
            "argocd.argoproj.io/sync-options": "Delete=false,Prune=false",  # Argo CD
        }
        assert crd["metadata"]["labels"]["app.kubernetes.io/part-of"] == "kubetune"


@pytest.mark.parametrize(
    ("values", "count", "annotated"),
    [(("--set", "crds.keep=false"), 3, False), (("--set", "crds.enabled=false"), 0, False)],
)
def test_crd_values(values: tuple[str, ...], count: int, annotated: bool) -> None:
    crds = [o for o in render(*values) if o["kind"] == "CustomResourceDefinition"]
    assert len(crds) == count
    assert all(("annotations" in c["metadata"]) == annotated for c in crds)


@pytest.mark.parametrize(
    ("values", "error"),
    [
        (("--set", "replicaCount=two"), "/replicaCount"),
        (("--set", "replicaCount=0"), "/replicaCount"),
        (("--set", "watchNamespaces=team-a"), "/watchNamespaces"),
        (("--set", "watchNamespaces={Team_A}"), "/watchNamespaces/0"),
        (("--set", "watchNamespaces={team-a,team-a}"), "/watchNamespaces"),
        (("--set", "operator.logFormat=xml"), "/operator/logFormat"),
        (("--set", "operator.healthPort=70000"), "/operator/healthPort"),
        (("--set", "image.pullPolicy=Sometimes"), "/image/pullPolicy"),
        (("--set", "image.digest=latest"), "/image/digest"),
        (("--set", "defaults.s3.endpoint=minio:9000"), "/defaults/s3/endpoint"),
        (("--set", "defaults.s3.retrySeconds=-1"), "/defaults/s3/retrySeconds"),
        (("--set", "podDisruptionBudget.maxUnavailable=0"), "/podDisruptionBudget/maxUnavailable"),
        (("--set", "metrics.serviceMonitor.interval=often"), "/metrics/serviceMonitor/interval"),
        (("--set", "replicas=3"), "additional properties 'replicas'"),
        (("--set", "crds.upgrade=true"), "additional properties 'upgrade'"),
        # Checked by the templates, beyond what a schema can say:
        (
            ("--set", "replicaCount=2", "--set", "operator.leaderElection=false"),
            "needs operator.leaderElection",
        ),
        (
            (
                "--set",
                "metrics.serviceMonitor.enabled=true",
                "--set",
                "metrics.service.enabled=false",
            ),
            "needs metrics.service.enabled",
        ),
        (("--set", "serviceAccount.create=false"), "serviceAccount.name is required"),
    ],
)
def test_bad_values_are_rejected(values: tuple[str, ...], error: str) -> None:
    result = helm(
        "template", RELEASE, str(CHART), "--kube-version", KUBE_VERSION, *values, check=False
    )
    assert result.returncode != 0
    assert error in result.stderr


def test_values_file_documents_every_key() -> None:
    """values.yaml and the schema list the same keys, so no value is undocumented."""
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(schema["properties"]) - {"global"} == set(values)
    for key, node in schema["properties"].items():
        if node.get("type") == "object" and node.get("additionalProperties") is False:
            assert set(node["properties"]) == set(values[key]), key
