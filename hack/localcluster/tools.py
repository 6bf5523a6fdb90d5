"""Build and cache the Go programs the local cluster runs.

Each tool is a consumer module under ``hack/tools/<name>`` whose go.mod/go.sum pin the exact
upstream version. Binaries are cached under the user cache directory keyed by a digest of
those files and of the Go version, so a cached tool is never rebuilt and a changed pin is.
A file lock makes concurrent test sessions build each tool once.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

TOOLS_DIR = Path(__file__).resolve().parent.parent / "tools"

_K8S_VERSION = "v1.37.2"
_K8S_LDFLAGS = (
    f"-X k8s.io/component-base/version.gitVersion={_K8S_VERSION}",
    "-X k8s.io/component-base/version.gitMajor=1",
    "-X k8s.io/component-base/version.gitMinor=37",
    "-X k8s.io/component-base/version.gitTreeState=clean",
    f"-X k8s.io/client-go/pkg/version.gitVersion={_K8S_VERSION}",
    "-X k8s.io/client-go/pkg/version.gitMajor=1",
    "-X k8s.io/client-go/pkg/version.gitMinor=37",
)


@dataclass(frozen=True)
class Tool:
    """One consumer module and the binaries built from it."""

    name: str
    packages: tuple[str, ...]
    ldflags: tuple[str, ...] = field(default=())

    @property
    def module_dir(self) -> Path:
        return TOOLS_DIR / self.name

    @property
    def binaries(self) -> tuple[str, ...]:
        """The names ``go build -o DIR/`` gives the binaries (it drops a /vN suffix)."""
        names = []
        for package in self.packages:
            parts = package.split("/")
            if len(parts) > 1 and re.fullmatch(r"v[0-9]+", parts[-1]):
                parts.pop()
            names.append(parts[-1])
        return tuple(names)


TOOLS: dict[str, Tool] = {
    t.name: t
    for t in (
        Tool(
            "kubernetes",
            (
                "k8s.io/kubernetes/cmd/kube-apiserver",
                "k8s.io/kubernetes/cmd/kube-controller-manager",
                "k8s.io/kubernetes/cmd/kube-scheduler",
                "k8s.io/kubernetes/cmd/kubectl",
            ),
            _K8S_LDFLAGS,
        ),
        Tool("etcd", ("go.etcd.io/etcd/server/v3",)),
        Tool("kwok", ("sigs.k8s.io/kwok/cmd/kwok",)),
        Tool("helm", ("helm.sh/helm/v3/cmd/helm",)),
        Tool("minio", ("github.com/minio/minio",)),
    )
}

# etcd's main package is go.etcd.io/etcd/server/v3, so Go names its binary "server".
_RENAMES = {"server": "etcd"}


def cache_root() -> Path:
    """The user cache directory for kubetune (XDG_CACHE_HOME aware)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kubetune"


def _go_version() -> str:
    go = shutil.which("go")
    if go is None:
        raise RuntimeError(
            "the Go toolchain is required to build the local cluster (go not on PATH)"
        )
    return subprocess.run(
        [go, "env", "GOVERSION"], check=True, capture_output=True, text=True
    ).stdout.strip()


def tool_key(tool: Tool, go_version: str) -> str:
    """A cache key that changes whenever the pins, the build flags or the Go version change."""
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum"):
        digest.update((tool.module_dir / name).read_bytes())
    digest.update("\0".join((go_version, *tool.packages, *tool.ldflags)).encode())
    return f"{tool.name}-{digest.hexdigest()[:16]}"


def _build(tool: Tool, out: Path) -> None:
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    ldflags = " ".join(("-s", "-w", *tool.ldflags))
    cmd = ["go", "build", "-trimpath", f"-ldflags={ldflags}", "-o", f"{staging}/", *tool.packages]
    env = {**os.environ, "GOFLAGS": "-mod=readonly -buildvcs=false"}
    started = time.monotonic()
    print(f"localcluster: building {tool.name} (first run only) ...", file=sys.stderr, flush=True)
    subprocess.run(cmd, cwd=tool.module_dir, env=env, check=True)
    for src, dst in _RENAMES.items():
        if (staging / src).exists():
            (staging / src).rename(staging / dst)
    staging.rename(out)
    print(
        f"localcluster: built {tool.name} in {time.monotonic() - started:.0f}s",
        file=sys.stderr,
        flush=True,
    )


def ensure_tools(names: Iterable[str] | None = None) -> dict[str, Path]:
    """Return ``{binary name: path}`` for the requested tools, building what is not cached."""
    wanted = [TOOLS[n] for n in (names or TOOLS)]
    go_version = _go_version()
    bin_root = cache_root() / "bin"
    bin_root.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for tool in wanted:
        out = bin_root / tool_key(tool, go_version)
        with open(bin_root / f"{tool.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not out.is_dir():
                _build(tool, out)
        for binary in tool.binaries:
            name = _RENAMES.get(binary, binary)
            paths[name] = out / name
    return paths
