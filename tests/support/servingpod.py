"""A real ``kubetune-serve`` process standing in for an InferenceDeployment's serving pod.

Serving pods on the test cluster are simulated by kwok, so nothing would produce the
metrics a canary analysis reads. This runs the reference runtime as a local process with
the tiny model and does what the kubelet and a ServiceMonitor would do around it: copies the
serving ConfigMap the operator writes into the file the runtime watches (``--config``),
mounts the S3 credentials Secret as files, and has Prometheus scrape it with the
``namespace`` label Kubernetes service discovery attaches. A traffic thread sends requests
for a served name, as clients would.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client
from kubernetes.client.rest import ApiException

from localcluster import S3Info, processes
from localcluster.prometheus import PrometheusServer
from support.loras import TINY_BASE
from support.polling import eventually


class ServingPod:
    """One runtime process following one InferenceDeployment's serving ConfigMap."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        name: str,
        *,
        model: Path,
        root: Path,
        s3: S3Info,
        prometheus: PrometheusServer,
    ) -> None:
        self.api, self.namespace, self.config_map = api, namespace, f"{name}-serving"
        self.model, self.root, self.s3, self.prometheus = model, root, s3, prometheus
        self.port = processes.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = root / "serving.yaml"
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.statuses: list[tuple[str | None, int]] = []
        """(adapter version that answered, HTTP status) of every request sent."""

    def start(self) -> ServingPod:
        secret = self.root / "secrets" / "s3-creds"
        secret.mkdir(parents=True)
        (secret / "AWS_ACCESS_KEY_ID").write_text(self.s3.access_key)
        (secret / "AWS_SECRET_ACCESS_KEY").write_text(self.s3.secret_key)
        self._copy_config()
        argv = [sys.executable, "-m", "kubetune_server", "--model-name", TINY_BASE]
        argv += ["--model-uri", str(self.model), "--config", str(self.config)]
        argv += ["--adapter-cache-dir", str(self.root / "cache")]
        argv += ["--s3-credentials-dir", str(self.root / "secrets"), "--host", "127.0.0.1"]
        argv += ["--port", str(self.port), "--config-poll-seconds", "0.2", "--threads", "1"]
        with open(self.root / "server.log", "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        self._run(self._follow_config)
        eventually(self._ready, timeout=120, what="runtime ready")
        self.prometheus.set_targets([(f"127.0.0.1:{self.port}", {"namespace": self.namespace})])
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        assert self.proc.poll() is None, self.log_tail()
        return processes.http_ok(f"{self.url}/readyz")

    def _run(self, target: Any) -> None:
        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _copy_config(self) -> None:
        data = (
            client.CoreV1Api(self.api)
            .read_namespaced_config_map(self.config_map, self.namespace)
            .data
        )
        text = (data or {}).get("serving.yaml", "")
        if not self.config.exists() or self.config.read_text() != text:
            staging = self.config.with_suffix(".tmp")
            staging.write_text(text)
            staging.replace(self.config)

    def _follow_config(self) -> None:
        """The kubelet's part: a mounted ConfigMap follows the object."""
        while not self.stopping.wait(0.3):
            try:
                self._copy_config()
            except ApiException:
                continue  # the namespace is going away with the test

    def send_traffic(self, model: str, *, per_second: float = 5.0) -> None:
        """Requests for ``model`` at about ``per_second``, sampled (temperature 1), until
        the pod stops."""

        def loop() -> None:
            with httpx.Client(base_url=self.url, timeout=30) as http:
                body = {"model": model, "prompt": "the water", "max_tokens": 2, "temperature": 1.0}
                while not self.stopping.wait(1 / per_second):
                    try:
                        response = http.post("/v1/completions", json=body)
                    except httpx.HTTPError:
                        continue
                    version = response.headers.get("x-kubetune-adapter-version")
                    self.statuses.append((version, response.status_code))

        self._run(loop)

    def state(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.url}/v1/admin/state", timeout=10).json())

    def log_tail(self, lines: int = 30) -> str:
        path = self.root / "server.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=30)
        self.prometheus.set_targets([])
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
