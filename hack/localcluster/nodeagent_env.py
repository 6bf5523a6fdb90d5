"""What a container sees: its environment, its command line and where its mounts really are.

Pure functions of the pod, the container and the ConfigMaps and Secrets they name, so the
node agent's trickiest rules (the kubelet's ``$(VAR)`` expansion, field references, optional
sources, path rewriting) are unit-tested without a cluster.

Local processes cannot mount volumes at absolute paths, so every ``volumeMount`` (and the
container's ``terminationMessagePath``) gets a local stand-in, and the mount path is rewritten
to it wherever it appears in ``command``, ``args``, ``workingDir`` and env values. Programs
that build paths at run time find the same mapping as JSON in ``KUBETUNE_PATH_MAP``; a
directory passed to a program that holds mounts below it (``--credentials-dir`` of per-Secret
mounts) becomes a local directory of links to those mounts (:func:`mount_parents`).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

TERMINATION_LOG_ENV = "KUBETUNE_TERMINATION_LOG"
"""Env var naming the local file whose contents become the termination message."""
PATH_MAP_ENV = "KUBETUNE_PATH_MAP"
"""Env var holding ``{mountPath: localPath}`` as JSON, for programs that build paths."""
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
"""Where in-cluster clients look for the pod's token and CA (a path no local process has)."""

_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_FIELD_WITH_KEY = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


class ConfigError(Exception):
    """The container cannot be configured yet (CreateContainerConfigError in pod status).

    The kubelet keeps retrying such a pod, because the missing Secret may still be created.
    """


class StartError(Exception):
    """The process cannot be started (StartError, exit code 128, as the runtime reports)."""


class Sources(Protocol):
    """Read access to the ConfigMaps, Secrets and service-account tokens a pod refers to."""

    def config_map(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        """The ConfigMap's data and binaryData, or None when it does not exist."""
        ...

    def secret(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        """The Secret's decoded data, or None when it does not exist."""
        ...

    def token(
        self,
        namespace: str,
        service_account: str,
        audience: str,
        seconds: int,
        pod: tuple[str, str] | None = None,
    ) -> str:
        """A service-account token, as the kubelet requests for projected volumes: bound to
        ``pod`` (name, uid), so that it dies with the pod (and the apiserver extends the
        default 3607s of admission's volume to a year, as it does for a kubelet)."""
        ...


def expand(value: str, env: Mapping[str, str]) -> str:
    """The kubelet's ``$(VAR)`` expansion: defined names are replaced, ``$$`` escapes ``$``,
    and a reference to an undefined name is left as written."""
    out: list[str] = []
    i = 0
    while i < len(value):
        if value[i] == "$" and i + 1 < len(value):
            following = value[i + 1]
            if following == "$":
                out.append("$")
                i += 2
                continue
            end = value.find(")", i + 2) if following == "(" else -1
            if end != -1:
                name = value[i + 2 : end]
                out.append(env.get(name, value[i : end + 1]))
                i = end + 1
                continue
        out.append(value[i])
        i += 1
    return "".join(out)


def field_value(pod: Mapping[str, Any], path: str) -> str:
    """The value of a downward-API ``fieldRef`` such as ``metadata.labels['app']``."""
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    keyed = _FIELD_WITH_KEY.match(path)
    if keyed:
        return str((meta.get(keyed.group(1)) or {}).get(keyed.group(2), ""))
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "metadata.labels": _format_map(meta.get("labels")),
        "metadata.annotations": _format_map(meta.get("annotations")),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": status.get("hostIP"),
        "status.podIP": status.get("podIP"),
        "status.hostIPs": ",".join(ip["ip"] for ip in status.get("hostIPs") or []),
        "status.podIPs": ",".join(ip["ip"] for ip in status.get("podIPs") or []),
    }
    if path not in simple:
        raise ConfigError(f"fieldRef {path!r} is not supported by the local node agent")
    return str(simple[path] or "")


def _format_map(values: Mapping[str, str] | None) -> str:
    # The downward API's format for whole label/annotation maps: sorted key="value" lines.
    return "\n".join(f'{k}="{v}"' for k, v in sorted((values or {}).items()))


def _source_value(
    kind: str, ref: Mapping[str, Any], namespace: str, sources: Sources
) -> str | None:
    """The value of a ``secretKeyRef``/``configMapKeyRef``; None when optional and missing."""
    name, key, optional = ref.get("name", ""), ref["key"], bool(ref.get("optional"))
    lookup = sources.secret if kind == "Secret" else sources.config_map
    data = lookup(namespace, name)
    if data is None or key not in data:
        if optional:
            return None
        if data is None:
            raise ConfigError(f'{kind.lower()} "{name}" not found')
        raise ConfigError(f"couldn't find key {key} in {kind} {namespace}/{name}")
    return data[key].decode("utf-8", "surrogateescape")


def resolve_env(
    pod: Mapping[str, Any], container: Mapping[str, Any], sources: Sources
) -> dict[str, str]:
    """The container's own variables in kubelet order: ``envFrom`` first, then ``env``, each
    value expanded against the variables defined before it."""
    namespace = pod["metadata"]["namespace"]
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        kind, ref = (
            ("Secret", source["secretRef"])
            if "secretRef" in source
            else ("ConfigMap", source["configMapRef"])
        )
        lookup = sources.secret if kind == "Secret" else sources.config_map
        data = lookup(namespace, ref.get("name", ""))
        if data is None:
            if ref.get("optional"):
                continue
            raise ConfigError(f'{kind.lower()} "{ref.get("name", "")}" not found')
        prefix = source.get("prefix", "")
        for key, raw in data.items():
            if _ENV_NAME.match(prefix + key):
                env[prefix + key] = raw.decode("utf-8", "surrogateescape")
    for var in container.get("env") or []:
        value_from = var.get("valueFrom")
        if value_from is None:
            env[var["name"]] = expand(var.get("value", ""), env)
        elif "fieldRef" in value_from:
            env[var["name"]] = field_value(pod, value_from["fieldRef"]["fieldPath"])
        elif "secretKeyRef" in value_from or "configMapKeyRef" in value_from:
            kind = "Secret" if "secretKeyRef" in value_from else "ConfigMap"
            ref = value_from["secretKeyRef" if kind == "Secret" else "configMapKeyRef"]
            value = _source_value(kind, ref, namespace, sources)
            if value is not None:
                env[var["name"]] = value
        else:
            raise ConfigError(f"env {var['name']}: {sorted(value_from)[0]} is not supported")
    return env


def build_path_map(
    container: Mapping[str, Any], volume_paths: Mapping[str, str], termination_log: str
) -> dict[str, str]:
    """``{mountPath: local path}`` for the container's mounts and its termination message file.

    ``volume_paths`` maps each volume name to where it was materialized; a mount of a volume
    that is not there (an unsupported type) is an error rather than a silently missing path.
    """
    mapping: dict[str, str] = {}
    for mount in container.get("volumeMounts") or []:
        local = volume_paths.get(mount["name"])
        if local is None:
            raise ConfigError(f"volume {mount['name']!r} is not available on this node")
        sub_path = mount.get("subPath")
        mapping[mount["mountPath"].rstrip("/") or "/"] = (
            f"{local.rstrip('/')}/{sub_path}" if sub_path else local
        )
    path = container.get("terminationMessagePath") or "/dev/termination-log"
    mapping.setdefault(path, termination_log)
    return mapping


def build_service_account_kubeconfig(
    server: str, path_map: Mapping[str, str]
) -> dict[str, Any] | None:
    """A kubeconfig that authenticates as the pod's ServiceAccount, for a container that
    mounts the service-account volume; None for one that does not.

    In-cluster clients read the token from the fixed :data:`SERVICE_ACCOUNT_DIR`, which a
    local process cannot have; pointed at the mounted token and CA through ``KUBECONFIG``,
    clients that fall back from in-cluster config to a kubeconfig (the kubernetes client's
    usual pattern, kopf's login) act with exactly the pod's own permissions.
    """
    local = path_map.get(SERVICE_ACCOUNT_DIR)
    if local is None:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "in-cluster",
                "cluster": {"server": server, "certificate-authority": f"{local}/ca.crt"},
            }
        ],
        "users": [{"name": "service-account", "user": {"tokenFile": f"{local}/token"}}],
        "contexts": [
            {"name": "in-cluster", "context": {"cluster": "in-cluster", "user": "service-account"}}
        ],
        "current-context": "in-cluster",
    }


def mount_parents(path_map: Mapping[str, str], values: Iterable[str]) -> dict[str, dict[str, str]]:
    """The directories among ``values`` that are not mounts but hold mounts below them, each
    with its mounts: ``{"/secrets": {"s3/a": local path, ...}}``.

    A program told ``--credentials-dir /secrets`` that reads ``/secrets/<name>`` for each
    mount ``/secrets/<name>`` gets, in place of ``/secrets``, a local directory of links to
    those mounts. Only whole values (or the part after ``=`` of ``--flag=value``) count, so a
    path used merely as an ancestor (``/etc`` of ``/etc/kubetune``) is never rewritten.
    """
    parents: dict[str, dict[str, str]] = {}
    for value in values:
        candidate = value.split("=", 1)[1] if value.startswith("-") and "=" in value else value
        candidate = candidate.rstrip("/")
        if not candidate.startswith("/") or candidate in path_map:
            continue
        below = {
            mount[len(candidate) + 1 :]: local
            for mount, local in path_map.items()
            if mount.startswith(candidate + "/")
        }
        if below:
            parents[candidate] = below
    return parents


def taken_ports(container: Mapping[str, Any], is_free: Callable[[int], bool]) -> list[int]:
    """The container's declared ports that something on this machine already holds."""
    declared = [int(p["containerPort"]) for p in container.get("ports") or []]
    return [port for port in declared if not is_free(port)]


def localize_ports(container: Mapping[str, Any], port_map: Mapping[int, int]) -> dict[str, Any]:
    """The container as it runs here when ports it declares are taken on this machine: each
    taken port ``P`` becomes ``port_map[P]`` in its declared ports, in probes, and wherever
    ``P`` is a whole argument or env value, or the value of ``--flag=P`` (pods on the agent
    share the host's network; on a node each has its own, so the port would be free)."""
    if not port_map:
        return dict(container)
    ports = {str(old): str(new) for old, new in port_map.items()}

    def value(text: str) -> str:
        if text in ports:
            return ports[text]
        flag, equals, rest = text.partition("=")
        return (
            f"{flag}={ports[rest]}" if equals and flag.startswith("-") and rest in ports else text
        )

    local = dict(container)
    for key in ("command", "args"):
        if container.get(key):
            local[key] = [value(arg) for arg in container[key]]
    if container.get("env"):
        local["env"] = [
            {**var, "value": value(var["value"])} if "value" in var else var
            for var in container["env"]
        ]
    local["ports"] = [
        {**p, "containerPort": port_map.get(int(p["containerPort"]), p["containerPort"])}
        for p in container.get("ports") or []
    ]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        spec = container.get(probe)
        for kind in ("httpGet", "tcpSocket"):
            port = (spec or {}).get(kind, {}).get("port")
            if isinstance(port, int) or str(port).isdigit():
                moved = port_map.get(int(port), int(port))
                local[probe] = {**spec, kind: {**spec[kind], "port": moved}}
    return local


def rewrite_paths(value: str, path_map: Mapping[str, str]) -> str:
    """``value`` with every mount path replaced by its local path.

    A mount path matches only as a whole path: ``/data`` is rewritten in ``/data``,
    ``/data/x`` and ``--out=/data``, but not in ``/database`` or ``s3://bucket/data``. Longer
    mount paths win, so a mount at ``/data/cache`` inside one at ``/data`` maps correctly.
    """
    if not path_map:
        return value
    ordered = sorted(path_map, key=len, reverse=True)
    pattern = re.compile(
        r"(?<![\w.~/-])(" + "|".join(re.escape(p) for p in ordered) + r")(?![\w.-])"
    )
    return pattern.sub(lambda m: path_map[m.group(1)], value)


def build_command(
    container: Mapping[str, Any],
    env: Mapping[str, str],
    path_map: Mapping[str, str],
    *,
    path: str | None,
) -> tuple[list[str], str | None]:
    """The argv (``command`` + ``args``, expanded against the container's ``env`` and with
    mount paths rewritten, the executable resolved on ``path``) and the rewritten workingDir.

    Images are ignored, so a container without ``command`` cannot be run here.
    """
    if not container.get("command"):
        raise StartError("the local node agent ignores images: the container needs a command")
    argv = [
        rewrite_paths(expand(arg, env), path_map)
        for arg in [*container["command"], *(container.get("args") or [])]
    ]
    executable = argv[0] if "/" in argv[0] else shutil.which(argv[0], path=path)
    if executable is None:
        raise StartError(f'exec: "{argv[0]}": executable file not found in $PATH')
    cwd = container.get("workingDir")
    if cwd:
        cwd = rewrite_paths(cwd, path_map)
        if not os.path.isdir(cwd):
            raise StartError(f"workingDir {cwd} does not exist on this machine")
    return [executable, *argv[1:]], cwd
