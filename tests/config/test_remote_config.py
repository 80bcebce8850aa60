"""Remote base paths in the config: URLs validated with file:line:key errors, the `remote:`
section with the config's units, the local folder the pipeline watches."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelswap.cli.main import main
from modelswap.config import Config, ModelConfig, RemoteConfig, parse_config
from modelswap.errors import ConfigError


def remote_yaml(base_path: str, remote: str = "") -> str:
    return f"models:\n  - name: ranker\n    base_path: {base_path}\n" + remote


def test_a_url_base_path_is_mirrored_into_the_cache_folder(tmp_path: Path) -> None:
    config = parse_config(remote_yaml(
        "s3://bucket/prod/ranker",
        "remote:\n  cache_dir: cache\n  poll_interval: 30s\n  stall_timeout: 1m\n"
        "  max_downloads: 3\n  min_free: 2GiB\n"
        "  queue: https://sqs.eu-west-1.amazonaws.com/1/q\n"),
        base_dir=tmp_path)
    model = config.models[0]
    assert model.is_remote and model.source_url == "s3://bucket/prod/ranker"
    assert model.base_path == tmp_path / "cache" / "ranker"
    assert config.remote == RemoteConfig(
        cache_dir=tmp_path / "cache", poll_interval=30.0, stall_timeout=60.0,
        max_downloads=3, min_free=2 << 30, queue="https://sqs.eu-west-1.amazonaws.com/1/q")
    again = Config.model_validate(config.model_dump())  # a round trip keeps both
    assert (again.models, again.remote) == (config.models, config.remote)
    local = parse_config(remote_yaml("/srv/models/ranker")).models[0]
    assert not local.is_remote and local.base_path == Path("/srv/models/ranker")


def test_remote_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CACHE_DIRECTORY", f"{tmp_path}/sd-cache:{tmp_path}/other")
    config = parse_config(remote_yaml("gs://bucket/ranker"))
    assert config.models[0].base_path == tmp_path / "sd-cache" / "ranker"  # systemd's
    remote = config.remote
    assert (remote.poll_interval, remote.poll_jitter, remote.max_downloads, remote.queue) \
        == (30.0, 0.2, 2, None)
    monkeypatch.delenv("CACHE_DIRECTORY")
    assert RemoteConfig().cache_dir == Path.home() / ".cache" / "modelswap"
    assert ModelConfig(name="x", base_path="memory://demo/x").source_url == "memory://demo/x"


@pytest.mark.parametrize(("base_path", "message"), [
    ("ftp://host/models", "unsupported URL scheme 'ftp'"),
    ("s3://", "expected s3://BUCKET/prefix"),
    ("memory://", "expected memory://NAME/prefix"),
    ("file://server/share/m", "expected file:///absolute/path"),
    ("s3://bucket/m?X-Amz-Signature=abc", "query strings and fragments are not supported"),
    ("s3://AKIA:hunter2secret@bucket/m", "credentials do not belong in the URL"),
])
def test_a_bad_url_is_an_error_at_its_line(base_path: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(remote_yaml(base_path), source="c.yaml")
    text = str(caught.value)
    assert text.startswith("c.yaml:3: models[0].base_path: ") and message in text, text
    assert "hunter2secret" not in text and "abc" not in text.split("?")[-1]


def test_remote_section_errors_name_their_key() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(remote_yaml("s3://b/m", "remote:\n  poll_interval: soon\n"
                                 "  max_downloads: 0\n  cache: /x\n"), source="c.yaml")
    lines = [str(e) for e in caught.value.errors]
    assert lines[0].startswith("c.yaml:5: remote.poll_interval: invalid duration 'soon'")
    assert lines[1].startswith("c.yaml:6: remote.max_downloads:")
    assert lines[2] == "c.yaml:7: remote.cache: unknown key 'cache' (did you mean 'cache_dir'?)"


def test_check_reports_a_store_that_cannot_be_built(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for var in ("AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT", "AZURE_ACCOUNT_NAME"):
        monkeypatch.delenv(var, raising=False)
    config = tmp_path / "c.yaml"
    config.write_text(f"models:\n  - name: a\n    base_path: file://{tmp_path}/store/a\n"
                      "  - name: b\n    base_path: az://container/b\n"
                      "  - name: c\n    base_path: ftp://x/c\n")
    assert main(["check", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"{config}:7: models[2].base_path: unsupported URL scheme 'ftp'" in err
    config.write_text("\n".join(config.read_text().splitlines()[:-2]) + "\n")
    assert main(["check", "--config", str(config)]) == 2
    out, err = capsys.readouterr()
    assert f"{config}:5: models[1].base_path: az://container/b:" in err
    assert f"a: file://{tmp_path}/store/a mirrored into " in out


@pytest.mark.parametrize(("queue", "kind"), [
    ("https://sqs.eu-west-1.amazonaws.com/123456789012/models", "sqs"),
    ("http://127.0.0.1:5000/123456789012/models", "sqs"),  # moto, LocalStack
    ("projects/ml-prod/subscriptions/model-events", "pubsub"),
    ("projects/example.com:ml-prod/subscriptions/model.events~1", "pubsub"),
])
def test_remote_queue_names_an_sqs_queue_or_a_pubsub_subscription(queue: str, kind: str) -> None:
    from modelswap.config.remote import queue_kind

    config = parse_config(remote_yaml("s3://b/m", f"remote:\n  queue: '{queue}'\n"))
    assert config.remote.queue == queue and queue_kind(queue) == kind


@pytest.mark.parametrize(("queue", "message"), [
    ("arn:aws:sqs:eu-west-1:123456789012:models", "by its URL (https://sqs.REGION"),
    ("projects/ml-prod/topics/model-events", "is a Pub/Sub topic: name a subscription"),
    ("projects/ml-prod/subscriptions/x", "not a Pub/Sub subscription name"),
    ("projects/ml-prod/subscriptions/goog-events", "not a Pub/Sub subscription name"),
    ("model-events", "expected an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME) "
                     "or a Pub/Sub subscription (projects/PROJECT/subscriptions/NAME)"),
    ("https://sqs.eu-west-1.amazonaws.com", "expected an SQS queue URL"),
    ("sqs://models", "expected an SQS queue URL"),
    ("https://AKIA:hunter2secret@sqs.eu-west-1.amazonaws.com/1/q", "credentials do not belong"),
    ("https://AKIA:x@sqs.eu-west-1.amazonaws.com/1/q?X-Amz-Security-Token=hunter2secret",
     "credentials do not belong"),  # the query string is hidden too
])
def test_a_bad_queue_is_an_error_at_its_line(queue: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(remote_yaml("s3://b/m", f"remote:\n  poll_interval: 1m\n"
                                             f"  queue: '{queue}'\n"), source="c.yaml")
    text = str(caught.value)
    assert text.startswith("c.yaml:6: remote.queue: ") and message in text, text
    assert "hunter2secret" not in text


def test_check_reports_a_queue_client_that_is_not_installed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    real = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name.startswith("google.cloud.pubsub") else real(name)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    config = tmp_path / "c.yaml"
    config.write_text(f"models:\n  - name: a\n    base_path: file://{tmp_path}/store/a\n"
                      "remote:\n  queue: projects/ml-prod/subscriptions/model-events\n")
    assert main(["check", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert (f"{config}:5: remote.queue: a Pub/Sub subscription needs google-cloud-pubsub: "
            "pip install 'modelswap[gcs]'") in err, err
