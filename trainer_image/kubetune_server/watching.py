"""Follow the mounted serving config and stage each new version of it.

A ConfigMap volume is updated by the kubelet swapping a symlink, some time after the object
changed; inotify on the file misses that, so the watcher re-reads the file every interval and
acts when its *content* changes. A file that does not parse is reported (status
``configError``, metric ``kubetune_config_errors_total``) and the previous config stays in
force: a bad edit never unloads anything.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path

from pydantic import ValidationError

from kubetune_server.config import load_config
from kubetune_server.metrics import ServerMetrics
from kubetune_server.registry import AdapterRegistry

log = logging.getLogger(__name__)


class ConfigWatcher:
    """Stages the config file's content whenever it changes."""

    def __init__(self, path: Path, registry: AdapterRegistry, metrics: ServerMetrics) -> None:
        self.path = path
        self.registry = registry
        self.metrics = metrics
        self._seen: str | None = None

    def poll(self) -> None:
        """Read the file once; stage it if its content is new."""
        try:
            digest = hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError as exc:
            self._report(f"cannot read {self.path}: {exc.strerror or exc}", key="unreadable")
            return
        if digest == self._seen:
            return
        self._seen = digest
        try:
            self.registry.set_desired(load_config(self.path))
        except (ValidationError, ValueError, OSError) as exc:
            self._report(f"invalid config {self.path}: {exc}", key=digest)
            return
        self.registry.config_error = None
        log.info("staged config from %s", self.path)

    def _report(self, message: str, *, key: str) -> None:
        """Record a bad config once per distinct content, not once per poll."""
        if self.registry.config_error != message:
            log.error("%s", message)
            self.metrics.config_errors.inc()
        self._seen = key
        self.registry.config_error = message

    async def run(self, interval: float) -> None:
        """Poll until cancelled."""
        while True:
            await asyncio.sleep(interval)
            self.poll()
