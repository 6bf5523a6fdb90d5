"""A pod's volumes as local directories, so its processes find their ConfigMaps and Secrets.

ConfigMap, Secret, downwardAPI and projected volumes become files (with their modes) in a
per-pod directory; emptyDir is an empty directory there; hostPath is the host path itself.
Every pod gets a projected service-account volume from admission unless it opts out, so
projected ``serviceAccountToken`` sources are served with a real bound token. Other volume
types (PVCs, CSI, ...) cannot be faked honestly and are reported as unsupported.

What a volume contains is decided by pure functions (:func:`volume_files`); only
:func:`materialize` writes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from localcluster.nodeagent_env import ConfigError, Sources, field_value

Files = dict[str, tuple[bytes, int]]
"""Relative path -> (content, mode) of the files a volume holds."""

DEFAULT_MODE = 0o644
FILE_VOLUMES = ("configMap", "secret", "downwardAPI", "projected")


def _keyed_files(
    data: Mapping[str, bytes],
    items: list[dict[str, Any]] | None,
    mode: int,
    what: str,
    *,
    optional: bool,
) -> Files:
    """A ConfigMap's or Secret's keys as files: all of them, or only ``items`` (key -> path)."""
    if not items:
        return {key: (value, mode) for key, value in data.items()}
    files: Files = {}
    for item in items:
        if item["key"] not in data:
            if optional:
                continue
            raise ConfigError(f"configuration error: key {item['key']} not found in {what}")
        files[item["path"]] = (data[item["key"]], item.get("mode", mode))
    return files


def _object_files(
    kind: str, ref: Mapping[str, Any], namespace: str, sources: Sources, mode: int
) -> Files:
    name = ref.get("name") or ref.get("secretName", "")
    data = (sources.secret if kind == "Secret" else sources.config_map)(namespace, name)
    optional = bool(ref.get("optional"))
    if data is None:
        if optional:
            return {}
        raise ConfigError(f'{kind.lower()} "{name}" not found')
    return _keyed_files(
        data, ref.get("items"), ref.get("defaultMode", mode), f"{kind} {name}", optional=optional
    )


def _downward_files(pod: Mapping[str, Any], items: list[dict[str, Any]], mode: int) -> Files:
    files: Files = {}
    for item in items:
        if "fieldRef" not in item:
            raise ConfigError("downwardAPI resourceFieldRef is not supported by the node agent")
        value = field_value(pod, item["fieldRef"]["fieldPath"])
        files[item["path"]] = (value.encode(), item.get("mode", mode))
    return files


def _projected_files(pod: Mapping[str, Any], volume: Mapping[str, Any], sources: Sources) -> Files:
    namespace = pod["metadata"]["namespace"]
    mode = volume.get("defaultMode", DEFAULT_MODE)
    files: Files = {}
    for source in volume.get("sources") or []:
        if "configMap" in source:
            files.update(_object_files("ConfigMap", source["configMap"], namespace, sources, mode))
        elif "secret" in source:
            files.update(_object_files("Secret", source["secret"], namespace, sources, mode))
        elif "downwardAPI" in source:
            files.update(_downward_files(pod, source["downwardAPI"].get("items") or [], mode))
        elif "serviceAccountToken" in source:
            token = source["serviceAccountToken"]
            value = sources.token(
                namespace,
                pod["spec"].get("serviceAccountName") or "default",
                token.get("audience", ""),
                int(token.get("expirationSeconds", 3600)),
                pod=(pod["metadata"]["name"], pod["metadata"]["uid"]),
            )
            files[token["path"]] = (value.encode(), mode)
        else:
            raise ConfigError(f"projected source {sorted(source)[0]} is not supported")
    return files


def volume_files(pod: Mapping[str, Any], volume: Mapping[str, Any], sources: Sources) -> Files:
    """The files a ConfigMap, Secret, downwardAPI or projected volume holds."""
    namespace = pod["metadata"]["namespace"]
    if "configMap" in volume:
        return _object_files("ConfigMap", volume["configMap"], namespace, sources, DEFAULT_MODE)
    if "secret" in volume:
        return _object_files("Secret", volume["secret"], namespace, sources, DEFAULT_MODE)
    if "downwardAPI" in volume:
        spec = volume["downwardAPI"]
        return _downward_files(pod, spec.get("items") or [], spec.get("defaultMode", DEFAULT_MODE))
    if "projected" in volume:
        return _projected_files(pod, volume["projected"], sources)
    raise ConfigError(f"volume {volume['name']!r} is not a file volume")


def materialize(pod: Mapping[str, Any], root: Path, sources: Sources) -> dict[str, str]:
    """Create every volume of ``pod`` under ``root``; return volume name -> local path.

    File volumes are rewritten on every call, so a pod that waited for a missing Secret sees
    it once it exists. emptyDir contents survive container restarts, as on a kubelet.
    """
    paths: dict[str, str] = {}
    for volume in pod["spec"].get("volumes") or []:
        name = volume["name"]
        if "hostPath" in volume:
            paths[name] = volume["hostPath"]["path"]
            continue
        target = root / name
        if "emptyDir" in volume:
            target.mkdir(parents=True, exist_ok=True)
        elif any(kind in volume for kind in FILE_VOLUMES):
            _write_files(target, volume_files(pod, volume, sources))
        else:
            kind = next((k for k in volume if k != "name"), "unknown")
            raise ConfigError(f"volume {name!r}: {kind} volumes are not supported on this node")
        paths[name] = str(target)
    return paths


def refresh(pod: Mapping[str, Any], root: Path, sources: Sources) -> None:
    """Rewrite the ConfigMap and Secret volumes materialized under ``root`` from their
    sources now (projected volumes keep their token until the pod restarts)."""
    for volume in pod["spec"].get("volumes") or []:
        if "configMap" in volume or "secret" in volume:
            _write_files(root / volume["name"], volume_files(pod, volume, sources))


def _write_files(target: Path, files: Files) -> None:
    """Write ``files`` into ``target`` and remove what is no longer there (a deleted key)."""
    target.mkdir(parents=True, exist_ok=True)
    wanted: set[Path] = set()
    for relative, (content, mode) in files.items():
        path = (target / relative).resolve()
        if not path.is_relative_to(target.resolve()):
            raise ConfigError(f"volume file path {relative!r} escapes the volume")
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written then renamed, so a process never reads a half-written file.
        partial = path.with_name(f".{path.name}.partial")
        partial.write_bytes(content)
        os.chmod(partial, mode)
        partial.replace(path)
        wanted.add(path)
    for existing in target.resolve().rglob("*"):
        if existing.is_file() and existing not in wanted:
            existing.unlink()


def link_mounts(directory: Path, mounts: Mapping[str, str]) -> None:
    """Make ``directory`` hold a link at each relative path of ``mounts`` to its local path
    (a stand-in for a directory that holds mounts, see ``nodeagent_env.mount_parents``)."""
    for relative, local in mounts.items():
        link = directory / relative
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink():
            link.unlink()
        link.symlink_to(local)
