"""The kubeconfig the node agent gives a container that mounts its service-account token."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kubernetes import client, config

from localcluster.nodeagent_env import (
    SERVICE_ACCOUNT_DIR,
    build_path_map,
    build_service_account_kubeconfig,
)

pytestmark = pytest.mark.unit

SERVER = "https://127.0.0.1:6443"


def _mounted(local: Path) -> dict[str, str]:
    container = {"volumeMounts": [{"name": "kube-api-access", "mountPath": SERVICE_ACCOUNT_DIR}]}
    return build_path_map(container, {"kube-api-access": str(local)}, "/tmp/termination-log")


def test_a_container_without_the_token_mount_gets_no_kubeconfig() -> None:
    container = {"volumeMounts": [{"name": "data", "mountPath": "/data"}]}
    path_map = build_path_map(container, {"data": "/x/data"}, "/tmp/termination-log")
    assert build_service_account_kubeconfig(SERVER, path_map) is None


def test_the_kubeconfig_points_at_the_mounted_token_and_ca() -> None:
    kubeconfig = build_service_account_kubeconfig(SERVER, _mounted(Path("/pods/p/volumes/sa")))
    assert kubeconfig is not None
    assert kubeconfig["clusters"][0]["cluster"] == {
        "server": SERVER,
        "certificate-authority": "/pods/p/volumes/sa/ca.crt",
    }
    assert kubeconfig["users"][0]["user"] == {"tokenFile": "/pods/p/volumes/sa/token"}


def test_the_kubernetes_client_authenticates_with_the_mounted_token(tmp_path: Path) -> None:
    volume = tmp_path / "sa"
    volume.mkdir()
    (volume / "token").write_text("bound-token-of-the-pod")
    (volume / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(build_service_account_kubeconfig(SERVER, _mounted(volume))))
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(path), client_configuration=configuration)
    assert configuration.host == SERVER
    assert configuration.ssl_ca_cert == str(volume / "ca.crt")
    assert configuration.get_api_key_with_prefix("BearerToken") == "Bearer bound-token-of-the-pod"
