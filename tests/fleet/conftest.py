"""Fleet fixtures: moto's S3 on 127.0.0.1 for the module, the AWS variables pointing at it,
a fresh bucket per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from conftest import moto_server as running_moto
from fleet.fleet_helpers import FLEET_SECRET


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    pytest.importorskip("obstore")
    with running_moto() as url:
        yield url


@pytest.fixture
def s3_url(monkeypatch: pytest.MonkeyPatch, moto_server: str) -> str:
    """`s3://<fresh bucket>/m` on moto; the AWS variables (inherited by the daemons, the
    CLI and Ray's workers started after this) point at it."""
    import boto3

    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAMODELSWAPFLEET")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FLEET_SECRET)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    name = f"fleet-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return f"s3://{name}/m"
