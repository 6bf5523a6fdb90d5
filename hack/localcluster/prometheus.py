"""A real Prometheus on 127.0.0.1, for tests of canary analysis.

Canary analysis asks Prometheus's HTTP API for rates and quantiles; a stand-in would only
test our idea of PromQL. Debian packages Prometheus (``apt-get install prometheus``), a
single static binary at /usr/bin/prometheus; no Go module build is needed. The package's
service is never used: each test run starts its own process with its own config, data
directory and port, scraping the targets the test names. Targets live in a file_sd file,
which Prometheus re-reads when it changes, so a test can point it at servers it starts later.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localcluster import processes

BINARY = Path("/usr/bin/prometheus")
INSTALL = "apt-get update && apt-get install -y --no-install-recommends prometheus"
START_TIMEOUT = 60.0


def find_prometheus() -> Path | None:
    """The Prometheus binary: $KUBETUNE_PROMETHEUS, then PATH, then Debian's path."""
    for candidate in (os.environ.get("KUBETUNE_PROMETHEUS"), shutil.which("prometheus")):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return BINARY if BINARY.is_file() else None


def ensure_prometheus(*, install: bool = True) -> Path:
    """The Prometheus binary, installing Debian's package first when it is missing and this
    process may (root, apt-get present); otherwise an error that says how to install it."""
    found = find_prometheus()
    if found is not None:
        return found
    if install and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["sh", "-c", INSTALL], env=env, check=True, capture_output=True)
        found = find_prometheus()
        if found is not None:
            return found
    raise RuntimeError(
        "Prometheus is needed for the canary analysis tests and was not found. Install "
        f"Debian's package as root ({INSTALL}) or set KUBETUNE_PROMETHEUS to a prometheus "
        "binary (version 2.x)."
    )


@dataclass
class PrometheusServer:
    """One Prometheus process scraping ``targets`` every ``scrape_interval``."""

    root: Path
    scrape_interval: str = "1s"
    port: int = 0
    pid: int = 0
    started: int = 0
    targets_file: Path = field(init=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        self.targets_file = self.root / "targets.json"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> PrometheusServer:
        binary = ensure_prometheus()
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        self.set_targets([])
        config = {
            "global": {"scrape_interval": self.scrape_interval, "scrape_timeout": "1s"},
            "scrape_configs": [
                {"job_name": "serving", "file_sd_configs": [{"files": [str(self.targets_file)]}]}
            ],
        }
        (self.root / "prometheus.yml").write_text(json.dumps(config))
        self.port = processes.free_port()
        try:
            self.pid, self.started = processes.start(
                [
                    binary,
                    f"--config.file={self.root / 'prometheus.yml'}",
                    f"--storage.tsdb.path={self.root / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1h",
                    "--log.level=warn",
                ],
                log=self.root / "prometheus.log",
                what="prometheus",
                ready=self.ready,
                timeout=START_TIMEOUT,
            )
        except BaseException:
            self.down()
            raise
        return self

    def ready(self) -> bool:
        return processes.http_ok(f"{self.url}/-/ready")

    def set_targets(self, targets: list[tuple[str, dict[str, str]]]) -> None:
        """Scrape these ``(host:port, labels)``; written atomically, picked up on change."""
        groups = [{"targets": [address], "labels": labels} for address, labels in targets]
        staging = self.targets_file.with_suffix(".tmp")
        staging.write_text(json.dumps(groups))
        staging.replace(self.targets_file)

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The result vector of an instant query (for tests' own checks)."""
        address = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        with urllib.request.urlopen(address, timeout=5) as response:
            return list(json.loads(response.read())["data"]["result"])

    def down(self) -> None:
        if self.pid:
            processes.stop(self.pid, self.started)
            self.pid = 0
        shutil.rmtree(self.root, ignore_errors=True)
