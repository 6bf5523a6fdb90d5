"""The Helm chart and the pinned helm client, for the chart's unit and integration tests."""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from localcluster import ClusterInfo, ensure_tools

CHART = Path(__file__).resolve().parents[2] / "helm" / "kubetune"
KUBE_VERSION = "1.37.2"
"""The local cluster's version: `helm template` checks Chart.yaml's kubeVersion against it."""
RELEASE = "rel"
NAMESPACE = "kt-system"


@cache
def helm_binary() -> Path:
    """The helm the harness builds from hack/tools/helm (cached after the first build)."""
    return ensure_tools(["helm"])["helm"]


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run helm; with ``check``, fail with its stderr when it fails."""
    result = subprocess.run(
        [str(helm_binary()), *args], capture_output=True, text=True, check=False, timeout=300
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
    return result


def render_text(*values: str, chart: Path = CHART) -> str:
    """`helm template` of ``chart`` as release ``rel`` in ``kt-system``, with ``values``
    arguments (``--set``, ``-f``); the YAML text."""
    return helm(
        "template", RELEASE, str(chart), "--namespace", NAMESPACE,
        "--kube-version", KUBE_VERSION, *values,
    ).stdout  # fmt: skip


def render(*values: str, chart: Path = CHART) -> list[dict[str, Any]]:
    """The objects `helm template` renders (see :func:`render_text`)."""
    return [d for d in yaml.safe_load_all(render_text(*values, chart=chart)) if d]


def service_account_kubeconfig(
    api_client: client.ApiClient,
    cluster: ClusterInfo,
    namespace: str,
    name: str,
    path: Path,
    *,
    seconds: int = 3600,
) -> Path:
    """Write to ``path`` a kubeconfig that authenticates as ServiceAccount ``namespace/name``
    with a fresh token from the TokenRequest API, as its pods would; ``path``."""
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=seconds)
    )
    token = (
        client.CoreV1Api(api_client)
        .create_namespaced_service_account_token(name, namespace, request)
        .status.token
    )
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {
                    "server": cluster.server,
                    "certificate-authority": str(cluster.ca_file),
                },
            }
        ],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [
            {"name": name, "context": {"cluster": "local", "user": name, "namespace": namespace}}
        ],
        "current-context": name,
    }
    path.write_text(yaml.safe_dump(kubeconfig))
    path.chmod(0o600)
    return path
