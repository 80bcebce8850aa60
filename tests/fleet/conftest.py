"""Fleet fixtures: moto's S3 on 127.0.0.1 for the module, the AWS variables pointing at it,
a fresh bucket per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from conftest import moto_server as running_moto
from conftest import point_aws_at
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

    point_aws_at(monkeypatch, moto_server, "AKIAMODELSWAPFLEET", FLEET_SECRET)
    name = f"fleet-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return f"s3://{name}/m"
