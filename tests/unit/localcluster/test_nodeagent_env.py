"""What a container sees on the node agent: env resolution, expansion and path rewriting."""

from __future__ import annotations

import json
import sys

import pytest

from localcluster.nodeagent_env import (
    ConfigError,
    StartError,
    build_command,
    build_path_map,
    expand,
    field_value,
    localize_ports,
    mount_parents,
    resolve_env,
    rewrite_paths,
    taken_ports,
)
from support.nodeagent import FakeSources, make_pod

SOURCES = FakeSources(
    config_maps={("team-a", "settings"): {"MODE": b"fast", "bad key": b"x", "LEVEL": b"3"}},
    secrets={("team-a", "s3"): {"access": b"AKIA", "secret": b"s3cr\xc3\xa9t"}},
)


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("$(A)/x", {"A": "1"}, "1/x"),
        ("$(A)$(B)", {"A": "1", "B": "2"}, "12"),
        ("$(MISSING)", {}, "$(MISSING)"),
        ("$$(A)", {"A": "1"}, "$(A)"),
        ("cost $5", {}, "cost $5"),
        ("$(A", {"A": "1"}, "$(A"),
        ("trailing $", {}, "trailing $"),
        ("$$", {}, "$"),
    ],
)
def test_expand_follows_the_kubelet(value: str, env: dict[str, str], expected: str) -> None:
    assert expand(value, env) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("metadata.name", "trainer-0"),
        ("metadata.namespace", "team-a"),
        ("metadata.uid", "0b7e5c1e-uid"),
        ("metadata.labels['kubetune.io/run']", "r1"),
        ("metadata.labels['absent']", ""),
        ("metadata.annotations['note']", "hello"),
        ("metadata.labels", 'app="trainer"\nkubetune.io/run="r1"'),
        ("spec.nodeName", "local-agent-0"),
        ("spec.serviceAccountName", "trainer"),
        ("status.podIP", "127.0.0.1"),
        ("status.podIPs", "127.0.0.1"),
        ("status.hostIP", "127.0.0.1"),
    ],
)
def test_field_refs_read_the_pod(path: str, expected: str) -> None:
    pod = make_pod()
    pod["status"].update(podIP="127.0.0.1", podIPs=[{"ip": "127.0.0.1"}], hostIP="127.0.0.1")
    assert field_value(pod, path) == expected


def test_unknown_field_ref_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"spec\.hostname"):
        field_value(make_pod(), "spec.hostname")


def _env(*env: dict, env_from: list | None = None) -> dict[str, str]:
    container = {"name": "main", "env": list(env), "envFrom": env_from or []}
    return resolve_env(make_pod(), container, SOURCES)


def test_env_resolves_every_source_kind_in_order() -> None:
    env = _env(
        {"name": "BUCKET", "value": "adapters"},
        {"name": "URI", "value": "s3://$(BUCKET)/$(RUN)"},
        {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "access"}}},
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "MODE"}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "RUN", "value": "late"},
    )
    assert env == {
        "BUCKET": "adapters",
        "URI": "s3://adapters/$(RUN)",  # RUN is defined after URI, so it stays as written
        "KEY": "AKIA",
        "MODE": "fast",
        "POD": "trainer-0",
        "RUN": "late",
    }


def test_secret_bytes_survive_as_env() -> None:
    env = _env({"name": "S", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "secret"}}})
    assert env["S"] == "s3crét"


def test_env_from_prefixes_skips_invalid_names_and_is_overridden_by_env() -> None:
    env = _env(
        {"name": "CFG_LEVEL", "value": "9"},
        env_from=[
            {"configMapRef": {"name": "settings"}, "prefix": "CFG_"},
            {"secretRef": {"name": "s3"}},
            {"secretRef": {"name": "absent", "optional": True}},
        ],
    )
    assert env == {
        "CFG_MODE": "fast",
        "CFG_LEVEL": "9",
        "access": "AKIA",
        "secret": "s3crét",
    }


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ({"secretKeyRef": {"name": "absent", "key": "k"}}, 'secret "absent" not found'),
        ({"secretKeyRef": {"name": "s3", "key": "nope"}}, "couldn't find key nope in Secret"),
        ({"configMapKeyRef": {"name": "absent", "key": "k"}}, 'configmap "absent" not found'),
        ({"resourceFieldRef": {"resource": "limits.cpu"}}, "resourceFieldRef is not supported"),
    ],
)
def test_missing_or_unsupported_sources_are_config_errors(ref: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _env({"name": "X", "valueFrom": ref})


def test_optional_missing_sources_leave_the_variable_unset() -> None:
    env = _env(
        {
            "name": "A",
            "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k", "optional": True}},
        },
        {
            "name": "B",
            "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "no", "optional": True}},
        },
    )
    assert env == {}


def test_env_from_a_missing_required_source_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match='configmap "absent" not found'):
        _env(env_from=[{"configMapRef": {"name": "absent"}}])


def test_path_map_covers_mounts_sub_paths_and_the_termination_file() -> None:
    container = {
        "volumeMounts": [
            {"name": "data", "mountPath": "/data/"},
            {"name": "config", "mountPath": "/etc/kubetune/job.yaml", "subPath": "job.yaml"},
        ],
        "terminationMessagePath": "/tmp/done",
    }
    mapping = build_path_map(container, {"data": "/agent/v/data", "config": "/agent/v/cfg"}, "/t")
    assert mapping == {
        "/data": "/agent/v/data",
        "/etc/kubetune/job.yaml": "/agent/v/cfg/job.yaml",
        "/tmp/done": "/t",
    }


def test_path_map_defaults_the_termination_path_and_rejects_unknown_volumes() -> None:
    assert build_path_map({}, {}, "/t") == {"/dev/termination-log": "/t"}
    with pytest.raises(ConfigError, match="'cache' is not available"):
        build_path_map({"volumeMounts": [{"name": "cache", "mountPath": "/c"}]}, {}, "/t")


PATHS = {"/data": "/L/data", "/data/cache": "/L/cache", "/dev/termination-log": "/L/term"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/data", "/L/data"),
        ("/data/train.jsonl", "/L/data/train.jsonl"),
        ("--output=/data/out", "--output=/L/data/out"),
        ("open('/data/x')", "open('/L/data/x')"),
        ("/data/cache/model", "/L/cache/model"),
        ("/data/cached", "/L/data/cached"),
        ("/database", "/database"),
        ("/data.bak", "/data.bak"),
        ("s3://bucket/data/x", "s3://bucket/data/x"),
        ("/srv/data", "/srv/data"),
        ("a:/data,/data/cache", "a:/L/data,/L/cache"),
        ("--termination-path /dev/termination-log", "--termination-path /L/term"),
    ],
)
def test_rewrite_replaces_whole_mount_paths_only(value: str, expected: str) -> None:
    assert rewrite_paths(value, PATHS) == expected


def test_command_is_expanded_rewritten_and_resolved_on_path(tmp_path) -> None:
    (tmp_path / "work").mkdir()
    (tmp_path / "d").mkdir()
    container = {
        "command": ["python3", "-c"],
        "args": ["print(1)", "--data=/data/$(SPLIT)", "$(UNSET)"],
        "workingDir": "/data/../work",
    }
    paths = {"/data": str(tmp_path / "d")}
    argv, cwd = build_command(container, {"SPLIT": "train"}, paths, path="/usr/bin:/bin")
    assert argv[0].endswith("/python3")
    assert argv[1:] == ["-c", "print(1)", f"--data={tmp_path}/d/train", "$(UNSET)"]
    assert cwd == f"{tmp_path}/d/../work"


def test_an_absolute_command_is_used_as_is() -> None:
    argv, cwd = build_command({"command": [sys.executable]}, {}, {}, path="")
    assert (argv, cwd) == ([sys.executable], None)


@pytest.mark.parametrize(
    ("container", "message"),
    [
        ({"args": ["serve"]}, "needs a command"),
        (
            {"command": ["no-such-binary-kt"]},
            'exec: "no-such-binary-kt": executable file not found',
        ),
        ({"command": ["true"], "workingDir": "/nonexistent/kt"}, "workingDir /nonexistent/kt"),
    ],
)
def test_what_cannot_start_is_a_start_error(container: dict, message: str) -> None:
    with pytest.raises(StartError, match=message):
        build_command(container, {}, {}, path="/usr/bin:/bin")


def test_path_map_is_json_serializable_for_kubetune_path_map() -> None:
    mapping = build_path_map(
        {"volumeMounts": [{"name": "v", "mountPath": "/v"}]}, {"v": "/L"}, "/t"
    )
    assert json.loads(json.dumps(mapping)) == mapping


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (  # a directory of per-Secret mounts, passed as a separate argument
            ["--credentials-dir", "/secrets/s3"],
            {"/secrets/s3": {"a": "/pod/volumes/a", "deep/b": "/pod/volumes/b"}},
        ),
        (
            ["--credentials-dir=/secrets/s3/"],
            {"/secrets/s3": {"a": "/pod/volumes/a", "deep/b": "/pod/volumes/b"}},
        ),
        (["/secrets/s3/a"], {}),  # a mount itself: rewritten as a mount
        (["/etc/config.yaml", "/secrets/s3x", "s3://bucket/secrets/s3"], {}),
        (["/"], {}),  # the root holds everything: never replaced
    ],
)
def test_mount_parents_only_for_whole_values_that_hold_mounts(values, expected) -> None:
    path_map = {
        "/secrets/s3/a": "/pod/volumes/a",
        "/secrets/s3/deep/b": "/pod/volumes/b",
        "/etc/kubetune": "/pod/volumes/config",
    }
    assert mount_parents(path_map, values) == expected


SERVER = {
    "name": "server",
    "command": ["kubetune-serve"],
    "args": ["--port", "8000", "--metrics=8000", "--workers", "80000", "--other=8000x"],
    "env": [
        {"name": "PORT", "value": "8000"},
        {"name": "NOTE", "value": "port 8000"},
        {"name": "FROM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ],
    "ports": [{"name": "http", "containerPort": 8000}, {"name": "admin", "containerPort": 9000}],
    "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}},
    "livenessProbe": {"tcpSocket": {"port": 8000}},
}


def test_taken_ports_are_the_declared_ones_something_holds() -> None:
    assert taken_ports(SERVER, is_free=lambda port: port != 8000) == [8000]
    assert taken_ports(SERVER, is_free=lambda port: True) == []
    assert taken_ports({"name": "x"}, is_free=lambda port: False) == []


def test_a_taken_port_moves_in_args_env_ports_and_probes_but_only_as_a_whole_value() -> None:
    local = localize_ports(SERVER, {8000: 41234})
    assert local["args"] == [
        "--port",
        "41234",
        "--metrics=41234",
        "--workers",
        "80000",
        "--other=8000x",
    ]
    assert [v.get("value") for v in local["env"]] == ["41234", "port 8000", None]
    assert local["ports"] == [
        {"name": "http", "containerPort": 41234},
        {"name": "admin", "containerPort": 9000},
    ]
    assert local["readinessProbe"] == SERVER["readinessProbe"]  # by name: follows "ports"
    assert local["livenessProbe"] == {"tcpSocket": {"port": 41234}}
    assert SERVER["args"][1] == "8000"  # the pod's own spec is left alone
    assert localize_ports(SERVER, {}) == SERVER
