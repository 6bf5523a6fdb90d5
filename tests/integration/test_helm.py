"""The Helm chart in the local cluster: `helm install` runs the operator's pods (on kwok
nodes, under the restricted Pod Security Standard), `helm upgrade` upgrades a changed CRD,
`helm uninstall` keeps the CRDs, and the chart's ServiceAccount is denied what the operator
must never do, checked with a real token of that ServiceAccount.

Whether the granted permissions are sufficient is proven by running the operator with that
token through the FineTuneJob scenario (tests/integration/operator).
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from localcluster import Cluster
from localcluster.nodes import KWOK_LABEL
from support.helm import CHART, helm, service_account_kubeconfig
from support.polling import eventually
from support.resources import new_namespace

pytestmark = pytest.mark.integration

CRDS = Path(__file__).resolve().parents[2] / "crds"
HELM_WAIT = "180s"
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}
HELM_OWNERSHIP_LABEL = "app.kubernetes.io/managed-by"
HELM_OWNERSHIP_ANNOTATIONS = ("meta.helm.sh/release-name", "meta.helm.sh/release-namespace")
MERGE_PATCH = "application/merge-patch+json"


@dataclass(frozen=True)
class Release:
    """An installed release of the chart."""

    name: str
    namespace: str
    watched: tuple[str, ...]

    @property
    def fullname(self) -> str:
        """The Deployment's, the ServiceAccount's and the RBAC objects' name."""
        return f"{self.name}-kubetune"


def install(cluster: Cluster, release: Release, *values: str, chart: Path = CHART) -> None:
    """`helm upgrade --install` ``chart``, waiting until the operator's pods are ready."""
    watch = ("--set", "watchNamespaces={" + ",".join(release.watched) + "}")
    helm(
        "upgrade", "--install", release.name, str(chart), "--namespace", release.namespace,
        "--wait", "--timeout", HELM_WAIT, "--kubeconfig", str(cluster.info.kubeconfig),
        *(watch if release.watched else ()), *values,
    )  # fmt: skip


@pytest.fixture(scope="module")
def make_namespace(api_client: client.ApiClient) -> Iterator[Callable[..., str]]:
    """Create namespaces (with labels) for this module; all deleted at its end."""
    created: list[str] = []

    def create(prefix: str, labels: dict[str, str] | None = None) -> str:
        created.append(new_namespace(api_client, prefix, labels))
        return created[-1]

    yield create
    for name in created:
        client.CoreV1Api(api_client).delete_namespace(name)


def _uninstall(cluster: Cluster, release: Release) -> None:
    helm(
        "uninstall", release.name, "--namespace", release.namespace, "--ignore-not-found",
        "--wait", "--kubeconfig", str(cluster.info.kubeconfig),
    )  # fmt: skip


@pytest.fixture(scope="module")
def watching_release(
    cluster: Cluster, kubetune_crds: list[str], make_namespace: Callable[..., str]
) -> Iterator[Release]:
    """The operator installed for one watched namespace; CRDs left to the test session."""
    release = Release(
        f"w{secrets.token_hex(3)}",
        make_namespace("kt-system", RESTRICTED),
        (make_namespace("kt-team"),),
    )
    install(cluster, release, "--set", "crds.enabled=false")
    yield release
    _uninstall(cluster, release)


@pytest.fixture(scope="module")
def cluster_wide_release(
    cluster: Cluster, kubetune_crds: list[str], make_namespace: Callable[..., str]
) -> Iterator[Release]:
    """The operator installed for every namespace; CRDs left to the test session."""
    release = Release(f"c{secrets.token_hex(3)}", make_namespace("kt-system", RESTRICTED), ())
    install(cluster, release, "--set", "crds.enabled=false")
    yield release
    _uninstall(cluster, release)


@pytest.mark.parametrize("mode", ["watching_release", "cluster_wide_release"])
def test_install_runs_the_operator_on_kwok_nodes(
    api_client: client.ApiClient, request: pytest.FixtureRequest, mode: str
) -> None:
    release: Release = request.getfixturevalue(mode)
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    policy = client.PolicyV1Api(api_client)
    deployment = apps.read_namespaced_deployment(release.fullname, release.namespace)
    assert deployment.status.available_replicas == 2
    selector = ",".join(f"{k}={v}" for k, v in deployment.spec.selector.match_labels.items())
    pods = core.list_namespaced_pod(release.namespace, label_selector=selector).items
    kwok_nodes = {
        n.metadata.name for n in core.list_node(label_selector="=".join(KWOK_LABEL)).items
    }
    assert len(pods) == 2
    for pod in pods:
        assert pod.spec.node_name in kwok_nodes
        assert pod.status.phase == "Running"
        assert pod.spec.service_account_name == release.fullname
    # The pods exist, so they passed the namespace's enforced restricted Pod Security level.
    assert core.read_namespace(release.namespace).metadata.labels.items() >= RESTRICTED.items()
    eventually(
        lambda: (
            policy.read_namespaced_pod_disruption_budget(
                release.fullname, release.namespace
            ).status.disruptions_allowed
            == 1
        ),
        what="the PodDisruptionBudget allows one disruption",
    )


def test_restricted_pod_security_is_enforced(
    api_client: client.ApiClient, watching_release: Release
) -> None:
    """The control for the check above: the namespace does reject a privileged pod."""
    privileged = client.V1Pod(
        metadata=client.V1ObjectMeta(name="privileged"),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(
                    name="main",
                    image="registry.invalid/x:1",
                    security_context=client.V1SecurityContext(privileged=True),
                )
            ]
        ),
    )
    with pytest.raises(ApiException) as denied:
        client.CoreV1Api(api_client).create_namespaced_pod(
            watching_release.namespace, privileged, dry_run="All"
        )
    assert denied.value.status == 403
    assert "violates PodSecurity" in denied.value.body


def as_service_account(
    cluster: Cluster, api_client: client.ApiClient, release: Release, tmp_path: Path
) -> client.ApiClient:
    """An API client with the chart's ServiceAccount's credentials (a fresh bound token)."""
    kubeconfig = service_account_kubeconfig(
        api_client, cluster.info, release.namespace, release.fullname, tmp_path / "sa.kubeconfig"
    )
    return config.new_client_from_config(config_file=str(kubeconfig))


def status_of(call: Callable[[], object]) -> int:
    """The HTTP status of an API call: 200 when it succeeds."""
    try:
        call()
    except ApiException as error:
        return error.status
    return 200


def make_secret(api_client: client.ApiClient, namespace: str) -> str:
    name = f"s3-{secrets.token_hex(3)}"
    client.CoreV1Api(api_client).create_namespaced_secret(
        namespace,
        client.V1Secret(metadata=client.V1ObjectMeta(name=name), string_data={"k": "v"}),
    )
    return name


ESCALATION = client.V1ClusterRoleBinding(
    metadata=client.V1ObjectMeta(name=f"kt-escalate-{secrets.token_hex(3)}"),
    role_ref=client.V1RoleRef(
        api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="cluster-admin"
    ),
    subjects=[client.RbacV1Subject(kind="ServiceAccount", name="any", namespace="default")],
)


def test_denied_outside_watched_namespaces_and_beyond_its_job(
    cluster: Cluster,
    api_client: client.ApiClient,
    watching_release: Release,
    make_namespace: Callable[..., str],
    tmp_path: Path,
) -> None:
    release = watching_release
    (watched,) = release.watched
    elsewhere = make_namespace("kt-other")
    inside, outside = make_secret(api_client, watched), make_secret(api_client, elsewhere)
    own_namespace = make_secret(api_client, release.namespace)
    sa = as_service_account(cluster, api_client, release, tmp_path)
    core, rbac = client.CoreV1Api(sa), client.RbacAuthorizationV1Api(sa)
    ext, leases = client.ApiextensionsV1Api(sa), client.CoordinationV1Api(sa)
    calls: dict[str, tuple[Callable[[], object], int]] = {
        # Controls: the token works, and the operator can do its job.
        "get a Secret in the watched namespace": (
            lambda: core.read_namespaced_secret(inside, watched),
            200,
        ),
        "list CRDs": (lambda: ext.list_custom_resource_definition(), 200),
        "list pods in the watched namespace": (lambda: core.list_namespaced_pod(watched), 200),
        # Secrets: only by name, only in watched namespaces.
        "get a Secret outside": (lambda: core.read_namespaced_secret(outside, elsewhere), 403),
        "get a Secret in its own namespace": (
            lambda: core.read_namespaced_secret(own_namespace, release.namespace),
            403,
        ),
        "list Secrets in the watched namespace": (
            lambda: core.list_namespaced_secret(watched),
            403,
        ),
        "list Secrets in all namespaces": (lambda: core.list_secret_for_all_namespaces(), 403),
        # Nothing outside the watched namespaces.
        "list pods outside": (lambda: core.list_namespaced_pod(elsewhere), 403),
        # Nodes are not its business.
        "delete a Node": (lambda: core.delete_node("kwok-cpu-0", dry_run="All"), 403),
        # RBAC is never editable.
        "create a ClusterRoleBinding": (
            lambda: rbac.create_cluster_role_binding(ESCALATION, dry_run="All"),
            403,
        ),
        "patch its own Role": (
            lambda: rbac.patch_namespaced_role(
                release.fullname, watched, {"rules": []}, dry_run="All", _content_type=MERGE_PATCH
            ),
            403,
        ),
        "delete its own ClusterRole": (
            lambda: rbac.delete_cluster_role(f"{release.fullname}-cluster", dry_run="All"),
            403,
        ),
        # Leases: the one the replicas elect a leader with (allowed, not created yet: no
        # operator runs in these pods), nothing else.
        "read its Lease": (
            lambda: leases.read_namespaced_lease("kubetune-operator", release.namespace),
            404,
        ),
        "read another Lease in its namespace": (
            lambda: leases.read_namespaced_lease("someone-else", release.namespace),
            403,
        ),
    }
    assert {what: status_of(call) for what, (call, _) in calls.items()} == {
        what: expected for what, (_, expected) in calls.items()
    }


def test_cluster_wide_reads_named_secrets_but_never_lists_them(
    cluster: Cluster,
    api_client: client.ApiClient,
    cluster_wide_release: Release,
    make_namespace: Callable[..., str],
    tmp_path: Path,
) -> None:
    anywhere = make_namespace("kt-any")
    secret = make_secret(api_client, anywhere)
    sa = as_service_account(cluster, api_client, cluster_wide_release, tmp_path)
    core, rbac = client.CoreV1Api(sa), client.RbacAuthorizationV1Api(sa)
    calls: dict[str, tuple[Callable[[], object], int]] = {
        "get a Secret in any namespace": (
            lambda: core.read_namespaced_secret(secret, anywhere),
            200,
        ),
        "list pods in all namespaces": (lambda: core.list_pod_for_all_namespaces(), 200),
        "list Secrets in a namespace": (lambda: core.list_namespaced_secret(anywhere), 403),
        "list Secrets in all namespaces": (lambda: core.list_secret_for_all_namespaces(), 403),
        "delete a Node": (lambda: core.delete_node("kwok-cpu-0", dry_run="All"), 403),
        "create a ClusterRoleBinding": (
            lambda: rbac.create_cluster_role_binding(ESCALATION, dry_run="All"),
            403,
        ),
        "patch its own ClusterRole": (
            lambda: rbac.patch_cluster_role(
                cluster_wide_release.fullname,
                {"rules": []},
                dry_run="All",
                _content_type=MERGE_PATCH,
            ),
            403,
        ),
    }
    assert {what: status_of(call) for what, (call, _) in calls.items()} == {
        what: expected for what, (_, expected) in calls.items()
    }


# --- CRDs: installed, upgraded and kept by a release that owns them ---------------------


def _crd_metadata(ext: client.ApiextensionsV1Api) -> dict[str, dict[str, Any] | None]:
    """Each kubetune CRD's labels and annotations, or None where it does not exist."""
    found: dict[str, dict[str, Any] | None] = {}
    for path in sorted(CRDS.glob("*.kubetune.io.yaml")):
        name = path.name.removesuffix(".yaml")
        try:
            meta = ext.read_custom_resource_definition(name).metadata
        except ApiException as error:
            if error.status != 404:
                raise
            found[name] = None
        else:
            found[name] = {"labels": meta.labels or {}, "annotations": meta.annotations or {}}
    return found


@pytest.fixture
def crd_release(
    cluster: Cluster, api_client: client.ApiClient, make_namespace: Callable[..., str]
) -> Iterator[Release]:
    """A release with default values, which owns the CRDs.

    CRDs that exist already (applied from crds/ by other tests) are handed to the release
    first, as a user who installed them with kubectl would (docs/argocd.md); afterwards
    they get their generated content and former metadata back.
    """
    release = Release(f"k{secrets.token_hex(3)}", make_namespace("kt-system", RESTRICTED), ())
    ext = client.ApiextensionsV1Api(api_client)
    before = _crd_metadata(ext)
    for name, meta in before.items():
        if meta is not None:
            ext.patch_custom_resource_definition(
                name,
                {
                    "metadata": {
                        "labels": {HELM_OWNERSHIP_LABEL: "Helm"},
                        "annotations": {
                            HELM_OWNERSHIP_ANNOTATIONS[0]: release.name,
                            HELM_OWNERSHIP_ANNOTATIONS[1]: release.namespace,
                        },
                    }
                },
                _content_type=MERGE_PATCH,
            )
    yield release
    _uninstall(cluster, release)
    for path in sorted(CRDS.glob("*.kubetune.io.yaml")):
        manifest = yaml.safe_load(path.read_text())
        name = manifest["metadata"]["name"]
        old = before.get(name)
        if old is None:
            continue  # created by the release and kept, as a user's would be
        current = ext.read_custom_resource_definition(name).metadata
        restore = {
            "metadata": {
                "labels": {k: old["labels"].get(k) for k in current.labels or {}},
                "annotations": {k: old["annotations"].get(k) for k in current.annotations or {}},
            },
            "spec": manifest["spec"],
        }
        ext.patch_custom_resource_definition(name, restore, _content_type=MERGE_PATCH)


def columns(ext: client.ApiextensionsV1Api, name: str) -> list[str]:
    crd = ext.read_custom_resource_definition(name)
    return [c.name for c in crd.spec.versions[0].additional_printer_columns]


def established(ext: client.ApiextensionsV1Api, name: str) -> bool:
    conditions = ext.read_custom_resource_definition(name).status.conditions or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


def test_upgrade_updates_a_changed_crd_and_uninstall_keeps_it(
    cluster: Cluster, api_client: client.ApiClient, crd_release: Release, tmp_path: Path
) -> None:
    ext, apps = client.ApiextensionsV1Api(api_client), client.AppsV1Api(api_client)
    crd = "finetunejobs.kubetune.io"
    install(cluster, crd_release)  # default values: CRDs included
    shipped = columns(ext, crd)
    assert "Method" not in shipped
    meta = ext.read_custom_resource_definition(crd).metadata
    assert meta.labels["app.kubernetes.io/instance"] == crd_release.name
    assert meta.annotations["helm.sh/resource-policy"] == "keep"

    # The next chart version adds a printer column (as a changed model would).
    changed = tmp_path / "kubetune"
    shutil.copytree(CHART, changed)
    crd_file = changed / "files" / "crds" / f"{crd}.yaml"
    manifest = yaml.safe_load(crd_file.read_text())
    manifest["spec"]["versions"][0]["additionalPrinterColumns"].insert(
        1, {"name": "Method", "type": "string", "jsonPath": ".spec.method"}
    )
    crd_file.write_text(yaml.safe_dump(manifest))
    install(cluster, crd_release, chart=changed)
    assert columns(ext, crd) == [shipped[0], "Method", *shipped[1:]]

    install(cluster, crd_release)  # and back
    assert columns(ext, crd) == shipped

    _uninstall(cluster, crd_release)
    with pytest.raises(ApiException) as gone:
        apps.read_namespaced_deployment(crd_release.fullname, crd_release.namespace)
    assert gone.value.status == 404
    for path in CRDS.glob("*.kubetune.io.yaml"):
        assert established(ext, path.name.removesuffix(".yaml"))
