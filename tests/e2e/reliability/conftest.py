"""Real runs under faults: an S3 server of their own and a gate in front of S3.

Tests that stop S3 use ``private_s3``, an S3 server of this package's own: the session's
shared server serves every other test and is never stopped. The control plane is shared
(nothing here restarts it); each test runs its own operator in its own namespace. The node
agent that trains for real and the tiny model are the e2e package's (``tests/e2e/conftest.py``).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from localcluster import S3Info, S3Server
from support.s3gate import S3Gate


@pytest.fixture(scope="package")
def private_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """An S3 server these tests may stop and start."""
    server = S3Server(tmp_path_factory.mktemp("private-s3"))
    server.up()
    try:
        yield server
    finally:
        server.down()


@pytest.fixture
def private_bucket(private_s3: S3Server) -> str:
    name = f"rel-{secrets.token_hex(6)}"
    private_s3.info.client().create_bucket(Bucket=name)
    return name  # the server's data goes with it at the end of the package


def gate_in_front_of(s3: S3Info) -> S3Gate:
    return S3Gate(int(s3.endpoint.rsplit(":", 1)[1]))
