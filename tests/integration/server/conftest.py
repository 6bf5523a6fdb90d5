"""Real reference-runtime servers on 127.0.0.1, a tiny model, and adapters in a real S3.

Servers run in this process (uvicorn in a thread, port chosen by the OS), so a test can
start several cheaply; ``test_cli.py`` runs the real entrypoint as a subprocess once.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from kubetune_server.app import create_app
from kubetune_server.settings import AdapterSettings, ModelSettings, ServingSettings, Settings
from support.loras import TINY_BASE, make_lora, manifest_digest, upload
from support.polling import eventually
from support.tinymodel import build_tiny_model

CREDENTIALS_SECRET = "s3-creds"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The base model every server here serves, as kubetune-test/tiny-llama."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def lora_dirs(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two adapters with deliberately different weights, saved locally with manifests."""
    root = tmp_path_factory.mktemp("loras")
    return {name: make_lora(tiny_model, root / name, seed=seed) for name, seed in
            (("a", 1), ("b", 2))}


@pytest.fixture(scope="module")
def module_bucket(s3: Any) -> Iterator[str]:
    """A bucket shared by the tests of one module (servers there outlive single tests)."""
    client = s3.client()
    name = f"kt-srv-{secrets.token_hex(5)}"
    client.create_bucket(Bucket=name)
    yield name
    for item in client.list_objects_v2(Bucket=name).get("Contents", []):
        client.delete_object(Bucket=name, Key=item["Key"])
    client.delete_bucket(Bucket=name)


@dataclass
class Server:
    """A running server and an HTTP client for it."""

    url: str
    client: httpx.Client
    runtime: Any
    config_path: Path | None

    def complete(self, model: str, prompt: str = "the water", **body: Any) -> httpx.Response:
        """POST /v1/completions, greedy and short unless told otherwise."""
        payload = {"model": model, "prompt": prompt, "max_tokens": 12, "temperature": 0, **body}
        return self.client.post("/v1/completions", json=payload)

    def text(self, model: str, prompt: str = "the water", **body: Any) -> str:
        """The completion text; fails the test on an error status."""
        response = self.complete(model, prompt, **body)
        assert response.status_code == 200, response.text
        return response.json()["choices"][0]["text"]

    def state(self) -> dict[str, Any]:
        """GET /v1/admin/state."""
        return self.client.get("/v1/admin/state").json()

    def adapter(self, version: str) -> dict[str, Any] | None:
        """One adapter's entry in the state."""
        return next((a for a in self.state()["adapters"] if a["version"] == version), None)


@dataclass
class ServerFactory:
    """Starts servers of the tiny model; stops them all at the end of the test."""

    tiny_model: Path
    root: Path
    _running: list[tuple[uvicorn.Server, threading.Thread, httpx.Client]]

    def __call__(
        self,
        *,
        config: dict[str, Any] | str | None = None,
        wait_ready: bool = True,
        max_lora_rank: int | None = None,
        max_active: int = 8,
        admin_token: str | None = None,
    ) -> Server:
        config_path = None
        if config is not None:
            config_path = self.root / f"serving-{secrets.token_hex(3)}.json"
            config_path.write_text(config if isinstance(config, str) else json.dumps(config))
        settings = Settings(
            model=ModelSettings(name=TINY_BASE, uri=str(self.tiny_model)),
            adapters=AdapterSettings(
                cache_dir=self.root / f"cache-{secrets.token_hex(3)}",
                config_path=config_path,
                credentials_dir=self.root / "secrets",
                max_lora_rank=max_lora_rank,
                poll_interval=0.1,
                retry_base=0.1,
                retry_max=0.5,
            ),
            serving=ServingSettings(
                host="127.0.0.1", port=0, max_active=max_active, admin_token=admin_token
            ),
        )
        app = create_app(settings)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        eventually(lambda: server.started, timeout=30, what="uvicorn started")
        port = server.servers[0].sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {admin_token}"} if admin_token else {}
        client = httpx.Client(base_url=url, timeout=60, headers=headers)
        self._running.append((server, thread, client))
        running = Server(url, client, app.state.runtime, config_path)
        if wait_ready:
            eventually(
                lambda: client.get("/readyz").status_code == 200, timeout=60, what="server ready"
            )
        return running

    def mount_credentials(self, s3: Any) -> None:
        """Write the S3 credentials Secret where this factory's servers look for it."""
        secret = self.root / "secrets" / CREDENTIALS_SECRET
        secret.mkdir(parents=True, exist_ok=True)
        (secret / "AWS_ACCESS_KEY_ID").write_text(s3.access_key)
        (secret / "AWS_SECRET_ACCESS_KEY").write_text(s3.secret_key)

    def stop_all(self) -> None:
        """Stop every server started (in-flight streams are cut)."""
        for server, thread, client in self._running:
            client.close()
            server.should_exit = True
            thread.join(timeout=30)


@pytest.fixture
def serve(tiny_model: Path, tmp_path: Path) -> Iterator[ServerFactory]:
    """Start servers with ``serve(config=...)``; they stop when the test ends."""
    factory = ServerFactory(tiny_model, tmp_path, [])
    yield factory
    factory.stop_all()


@pytest.fixture(scope="module")
def serve_module(
    tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerFactory]:
    """Like ``serve``, for servers shared by the tests of one module."""
    factory = ServerFactory(tiny_model, tmp_path_factory.mktemp("servers"), [])
    yield factory
    factory.stop_all()


@pytest.fixture(scope="module")
def s3_source(s3: Any, module_bucket: str):
    """Upload an adapter directory and return its config entry (version, uri, digest, s3)."""

    def source(directory: Path, version: str, *, digest: str | None = None) -> dict[str, Any]:
        uri = upload(s3.client(), directory, module_bucket, f"{version}-{secrets.token_hex(3)}")
        return {
            "version": version,
            "uri": uri,
            "digest": digest or manifest_digest(directory),
            "s3": {"endpoint": s3.endpoint, "credentialsSecret": CREDENTIALS_SECRET},
        }

    return source
