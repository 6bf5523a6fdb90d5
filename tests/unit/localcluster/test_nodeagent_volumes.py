"""A pod's volumes as files: which files, with which modes, and what is refused."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from localcluster.nodeagent_env import ConfigError
from localcluster.nodeagent_volumes import link_mounts, materialize, refresh, volume_files
from support.nodeagent import FakeSources, make_pod

SOURCES = FakeSources(
    config_maps={
        ("team-a", "job"): {"job.yaml": b"epochs: 1\n", "other": b"x"},
        ("team-a", "kube-root-ca.crt"): {"ca.crt": b"CA"},
    },
    secrets={("team-a", "s3"): {"access": b"AKIA", "secret": b"\x00\x01"}},
)


def files(volume: dict) -> dict:
    return volume_files(make_pod(), volume, SOURCES)


def test_config_map_all_keys_with_the_default_mode() -> None:
    assert files({"name": "v", "configMap": {"name": "job"}}) == {
        "job.yaml": (b"epochs: 1\n", 0o644),
        "other": (b"x", 0o644),
    }


def test_config_map_items_choose_keys_paths_and_modes() -> None:
    volume = {
        "name": "v",
        "configMap": {
            "name": "job",
            "defaultMode": 0o600,
            "items": [
                {"key": "job.yaml", "path": "conf/job.yaml"},
                {"key": "other", "path": "o", "mode": 0o400},
            ],
        },
    }
    assert files(volume) == {"conf/job.yaml": (b"epochs: 1\n", 0o600), "o": (b"x", 0o400)}


def test_secret_volume_holds_decoded_bytes() -> None:
    assert files({"name": "v", "secret": {"secretName": "s3"}})["secret"] == (b"\x00\x01", 0o644)


@pytest.mark.parametrize(
    ("volume", "message"),
    [
        ({"name": "v", "secret": {"secretName": "absent"}}, 'secret "absent" not found'),
        (
            {"name": "v", "configMap": {"name": "job", "items": [{"key": "no", "path": "p"}]}},
            "key no not found in ConfigMap job",
        ),
    ],
)
def test_missing_sources_are_config_errors(volume: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        files(volume)


def test_optional_missing_sources_give_empty_volumes() -> None:
    assert files({"name": "v", "secret": {"secretName": "absent", "optional": True}}) == {}


def test_projected_service_account_volume_as_admission_adds_it() -> None:
    volume = {
        "name": "kube-api-access-x",
        "projected": {
            "defaultMode": 0o644,
            "sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                {
                    "configMap": {
                        "name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}
                        ]
                    }
                },
            ],
        },
    }
    assert files(volume) == {
        "token": (b"token:team-a:trainer::3607", 0o644),
        "ca.crt": (b"CA", 0o644),
        "namespace": (b"team-a", 0o644),
    }


def test_downward_api_volume_writes_labels_and_names() -> None:
    volume = {
        "name": "info",
        "downwardAPI": {
            "items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
            ]
        },
    }
    assert files(volume) == {
        "labels": (b'app="trainer"\nkubetune.io/run="r1"', 0o644),
        "name": (b"trainer-0", 0o644),
    }


def test_materialize_writes_files_and_maps_every_volume(tmp_path: Path) -> None:
    pod = make_pod(
        volumes=[
            {
                "name": "job",
                "configMap": {
                    "name": "job",
                    "items": [{"key": "job.yaml", "path": "a/job.yaml", "mode": 0o600}],
                },
            },
            {"name": "scratch", "emptyDir": {}},
            {"name": "host", "hostPath": {"path": "/opt/models"}},
        ]
    )
    paths = materialize(pod, tmp_path, SOURCES)
    assert paths == {
        "job": str(tmp_path / "job"),
        "scratch": str(tmp_path / "scratch"),
        "host": "/opt/models",
    }
    written = tmp_path / "job" / "a" / "job.yaml"
    assert written.read_bytes() == b"epochs: 1\n"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert (tmp_path / "scratch").is_dir()
    assert sorted(p.name for p in (tmp_path / "job" / "a").iterdir()) == ["job.yaml"]


def test_materialize_keeps_empty_dir_contents_across_calls(tmp_path: Path) -> None:
    pod = make_pod(volumes=[{"name": "scratch", "emptyDir": {}}])
    materialize(pod, tmp_path, SOURCES)
    (tmp_path / "scratch" / "checkpoint").write_text("step 10")
    materialize(pod, tmp_path, SOURCES)
    assert (tmp_path / "scratch" / "checkpoint").read_text() == "step 10"


@pytest.mark.parametrize(
    ("volume", "message"),
    [
        (
            {"name": "data", "persistentVolumeClaim": {"claimName": "c"}},
            "persistentVolumeClaim volumes are not supported",
        ),
        (
            {
                "name": "v",
                "configMap": {"name": "job", "items": [{"key": "other", "path": "../../escape"}]},
            },
            "escapes the volume",
        ),
    ],
)
def test_materialize_refuses_what_it_cannot_honour(
    tmp_path: Path, volume: dict, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        materialize(make_pod(volumes=[volume]), tmp_path / "volumes", SOURCES)
    assert not (tmp_path / "escape").exists()


def test_refresh_follows_config_map_and_secret_changes(tmp_path: Path) -> None:
    sources = FakeSources(
        config_maps={("team-a", "routes"): {"serving.yaml": b"v1: 100\n", "old": b"x"}},
        secrets={("team-a", "s3"): {"access": b"AKIA"}},
    )
    pod = make_pod(
        volumes=[
            {"name": "config", "configMap": {"name": "routes"}},
            {"name": "creds", "secret": {"secretName": "s3"}},
            {"name": "scratch", "emptyDir": {}},
        ]
    )
    materialize(pod, tmp_path, sources)
    (tmp_path / "scratch" / "checkpoint").write_text("step 10")
    sources.config_maps[("team-a", "routes")] = {"serving.yaml": b"v1: 50\nv2: 50\n"}
    sources.secrets[("team-a", "s3")] = {"access": b"AKIA2"}

    refresh(pod, tmp_path, sources)

    assert (tmp_path / "config" / "serving.yaml").read_bytes() == b"v1: 50\nv2: 50\n"
    assert not (tmp_path / "config" / "old").exists()  # a deleted key's file goes
    assert (tmp_path / "creds" / "access").read_bytes() == b"AKIA2"
    assert (tmp_path / "scratch" / "checkpoint").read_text() == "step 10"


def test_refresh_keeps_the_files_while_a_source_is_missing(tmp_path: Path) -> None:
    sources = FakeSources(config_maps={("team-a", "routes"): {"serving.yaml": b"v1: 100\n"}})
    pod = make_pod(volumes=[{"name": "config", "configMap": {"name": "routes"}}])
    materialize(pod, tmp_path, sources)
    del sources.config_maps[("team-a", "routes")]
    with pytest.raises(ConfigError, match='configmap "routes" not found'):
        refresh(pod, tmp_path, sources)
    assert (tmp_path / "config" / "serving.yaml").read_bytes() == b"v1: 100\n"


def test_link_mounts_makes_a_directory_of_links_to_the_volumes(tmp_path: Path) -> None:
    volume = tmp_path / "volumes" / "s3-credentials-0"
    volume.mkdir(parents=True)
    (volume / "AWS_ACCESS_KEY_ID").write_text("AKIA")
    parent = tmp_path / "mounts" / "secrets"
    link_mounts(parent, {"s3-local": str(volume)})
    link_mounts(parent, {"s3-local": str(volume)})  # again, as on a container restart
    assert (parent / "s3-local" / "AWS_ACCESS_KEY_ID").read_text() == "AKIA"
