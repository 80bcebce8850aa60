"""Fixtures: moto's S3 + SQS server on 127.0.0.1 for the session, AWS env, buckets, models."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import moto_server as running_moto
from conftest import point_aws_at
from watch.remote.remote_helpers import SECRET, Models

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with running_moto() as url:
        yield url


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, moto_endpoint: str) -> str:
    """The standard AWS variables, pointing at moto; returns the endpoint."""
    point_aws_at(monkeypatch, moto_endpoint, "AKIAMODELSWAPTEST", SECRET)
    return moto_endpoint


@pytest.fixture
def s3(aws_env: str) -> Any:
    import boto3

    return boto3.client("s3")


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"models-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    return Models(tmp_path_factory.mktemp("exports"))
