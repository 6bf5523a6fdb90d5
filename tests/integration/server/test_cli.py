"""The serve entrypoint as a container runs it: flags, mounted config and Secret, probes,
a request, and a clean exit on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import httpx

from support.loras import TINY_BASE
from support.polling import eventually


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_kubetune_serve_runs_the_runtime(tmp_path, tiny_model, s3, s3_source, lora_dirs):
    secret = tmp_path / "secrets" / "s3-creds"
    secret.mkdir(parents=True)
    (secret / "AWS_ACCESS_KEY_ID").write_text(s3.access_key)
    (secret / "AWS_SECRET_ACCESS_KEY").write_text(s3.secret_key)
    config = tmp_path / "serving.yaml"
    config.write_text(json.dumps({
        "generation": 4,
        "adapters": [s3_source(lora_dirs["a"], "bot-v1")],
        "routes": {"bot": {"bot-v1": 100}},
    }))
    port = free_port()
    command = [
        sys.executable, "-m", "kubetune_server",
        "--model-name", TINY_BASE,
        "--model-uri", str(tiny_model),
        "--config", str(config),
        "--adapter-cache-dir", str(tmp_path / "cache"),
        "--s3-credentials-dir", str(tmp_path / "secrets"),
        "--max-lora-rank", "8",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--threads", "1",
    ]
    log = tmp_path / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stderr=sink, stdout=sink
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            eventually(lambda: client.get("/startupz").status_code == 200, timeout=90,
                       what="startup")
            ready = eventually(
                lambda: (r := client.get("/readyz")).status_code == 200 and r,
                timeout=60,
                what="ready",
            )
            assert ready.json()["appliedGeneration"] == 4
            response = client.post(
                "/v1/chat/completions",
                json={"model": "bot", "messages": [{"role": "user", "content": "hi"}],
                      "max_tokens": 4},
            )
            assert response.status_code == 200, response.text
            assert response.json()["usage"]["completion_tokens"] == 4
            assert 'adapter_version="bot-v1"' in client.get("/metrics").text
        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert process.wait(timeout=60) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
