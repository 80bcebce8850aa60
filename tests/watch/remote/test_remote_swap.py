"""Remote base paths end to end: the real `ModelSwap` against moto's S3 (and SQS) server on
127.0.0.1, real TensorFlow exports, the mirror in front of the unchanged local pipeline."""

from __future__ import annotations

import json
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from modelswap import ModelSwap, State, parse_config
from modelswap.cli.status import fetch_models, render_status
from modelswap.watch.remote import publish
from watch.remote.remote_helpers import SECRET, TIMEOUT, Models, Proxy, wait_for


def config_text(tmp_path: Path, url: str, model: str = "", remote: str = "",
                top: str = "") -> str:
    text = f"models:\n  - name: m\n    base_path: {url}\n"
    text += "".join(f"    {line}\n" for line in model.splitlines() if line)
    text += f"remote:\n  cache_dir: {tmp_path / 'cache'}\n"
    text += "".join(f"  {line}\n" for line in (remote or "poll_interval: 300ms").splitlines())
    return text + top


def answer(swap: ModelSwap, version: int | None = None) -> tuple[int, float]:
    import tensorflow as tf

    with swap.acquire("m", version=version) as served:
        y = served.signatures["serving_default"](x=tf.constant([[1.0]]))["y"]
        return served.version, float(y[0][0])


def remote_version(swap: ModelSwap, n: int) -> Any:
    return swap.remote_status()["m"].version(n)


def test_publish_serves_swaps_prunes_and_reloads_without_downloading_again(
        tmp_path: Path, bucket: str, models: Models, run_swap: Any) -> None:
    url = f"s3://{bucket}/prod/m"
    publish(models.get("a"), url)
    swap, events = run_swap(config_text(tmp_path, url))
    assert swap.wait_until_available("m", timeout=TIMEOUT) == 1
    assert answer(swap) == (1, Models.answer("a"))
    with swap.acquire("m") as served:
        assert served.path == tmp_path / "cache" / "m" / "1"
    publish(models.get("b"), url)
    swap.wait_until_available("m", version=2, timeout=TIMEOUT)
    assert answer(swap) == (2, Models.answer("b"))
    wait_for(lambda: not (tmp_path / "cache" / "m" / "1").exists(), what="v1 pruned")
    assert events.states(1)[-1] is State.END
    status = swap.remote_status()["m"]
    assert status.reachable is True and status.counters["downloads"] == 2

    # a reload that changes the mirror's settings (a new Mirror) and the labels
    inode = (tmp_path / "cache" / "m" / "2").stat().st_ino
    seen = events.states(2)  # (a WAITING first when a gate job raced the rename: still fine)
    before = swap.remote_status()["m"].counters
    swap.reload(parse_config(config_text(tmp_path, url, "labels: {stable: 2}",
                                         "poll_interval: 250ms")))
    wait_for(lambda: swap.remote_status()["m"].counters["list"] >= before["list"] + 2,
             what="the new mirror listed twice")
    after = swap.remote_status()["m"].counters
    assert after["downloads"] == before["downloads"]  # v2 adopted from the cache
    # the new mirror judged v1 afresh (not mirrored: one manifest GET), fetched nothing else
    assert after["bytes_downloaded"] - before["bytes_downloaded"] < 4096
    assert (tmp_path / "cache" / "m" / "2").stat().st_ino == inode
    assert answer(swap) == (2, Models.answer("b")) and events.states(2) == seen  # not reloaded
    # the model removed, then back: the cache folder is adopted, not downloaded again
    swap.reload(parse_config(config_text(tmp_path, "/nonexistent/elsewhere")))
    assert swap.remote_status() == {}
    swap.reload(parse_config(config_text(tmp_path, url)))
    swap.wait_until_available("m", version=2, timeout=TIMEOUT)
    assert swap.remote_status()["m"].counters["downloads"] == before["downloads"]
    # another store with the same numbers: the cache is not taken for its copy
    other = f"s3://{bucket}/staging/m"
    publish(models.get("c"), other)
    swap.reload(parse_config(config_text(tmp_path, other)))
    wait_for(lambda: answer(swap) == (1, Models.answer("c")), what="the other store's v1")
    wait_for(lambda: sorted(p.name for p in (tmp_path / "cache" / "m").iterdir()
                            if not p.name.startswith(".")) == ["1"], what="v2 pruned")


def _put(s3: Any, bucket: str, key: str, body: bytes) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=body)


def test_a_raw_upload_in_a_bad_order_never_loads_early(
        tmp_path: Path, s3: Any, bucket: str, models: Models, run_swap: Any) -> None:
    src = models.get("c")
    swap, events = run_swap(config_text(tmp_path, f"s3://{bucket}/m",
                                     remote="poll_interval: 100ms"))
    shard = next((src / "variables").glob("variables.data-*"))
    steps = [("saved_model.pb", None, "variables/variables.index missing"),
             ("variables/variables.index", None, f"variables/{shard.name} missing"),
             (f"variables/{shard.name}", shard.stat().st_size // 2, f"variables/{shard.name}:")]
    for rel, size, reason in steps:  # pb first, the shard last and cut short
        data = (src / rel).read_bytes()
        _put(s3, bucket, f"m/1/{rel}", data if size is None else data[:size])
        wait_for(lambda r=reason: (v := remote_version(swap, 1)) is not None  # type: ignore[misc]
                 and v.state == "incomplete" and r in (v.reason or ""), what=reason)
        row = next(s for s in swap.status()["m"] if s.version == 1)
        assert row.state is State.WAITING and reason in (row.error or "")
        assert events.states(1) == [] and not (tmp_path / "cache" / "m" / "1").exists()
    for path in sorted(src.rglob("*")):
        if path.is_file():  # the rest, the shard whole
            _put(s3, bucket, f"m/1/{path.relative_to(src).as_posix()}", path.read_bytes())
    swap.wait_until_available("m", timeout=TIMEOUT)
    assert answer(swap) == (1, Models.answer("c"))
    assert State.ERROR not in events.states(1)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        return response.read().decode()  # type: ignore[no-any-return]


def test_downloading_shows_as_waiting_and_a_store_away_keeps_the_old_version_serving(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aws_env: str, bucket: str,
        models: Models, run_swap: Any) -> None:
    proxy = Proxy(int(aws_env.rsplit(":", 1)[1]))
    try:
        url = f"s3://{bucket}/m"
        publish(models.get("big"), url)  # 8 MB of variables
        proxy.stall_after(1 << 20)  # responses hold after 1 MiB: mid-shard
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)  # the swap's store
        swap, events = run_swap(config_text(tmp_path, url, top="http:\n  listen: 127.0.0.1:0\n"))
        wait_for(lambda: any(s.version == 1 and s.state is State.WAITING
                             and "downloading" in (s.error or "") and "/8.0 MB" in s.error
                             for s in swap.status()["m"]), what="v1 downloading")
        assert events.states(1) == []  # progress is a status reason, never an event
        host, port = swap.http_address or ("", 0)
        base = f"http://{host}:{port}"
        remote = json.loads(_get(f"{base}/v1/models"))["models"][0]["remote"]
        assert remote["downloading"][0]["version"] == 1
        proxy.release()
        swap.wait_until_available("m", timeout=TIMEOUT)
        assert answer(swap) == (1, Models.answer("big"))

        proxy.refuse()  # the store goes away
        monkeypatch.setenv("AWS_ENDPOINT_URL", aws_env)
        publish(models.get("b"), url)  # v2 lands while the swap cannot see the store
        wait_for(lambda: swap.remote_status()["m"].reachable is False, what="unreachable")
        assert answer(swap) == (1, Models.answer("big"))  # the old version keeps serving
        report = fetch_models(base)
        text = render_status(report)
        assert "UNREACHABLE" in text and report["models"][0]["served_version"] == 1
        metrics = _get(f"{base}/metrics")
        unreachable = [line for line in metrics.splitlines()
                       if line.startswith('modelswap_remote_unreachable_total{model="m"}')]
        assert unreachable and float(unreachable[0].split()[-1]) >= 1
        assert 'modelswap_remote_requests_total{kind="list",model="m"}' in metrics
        assert 'modelswap_remote_downloaded_bytes_total{model="m"}' in metrics
        assert SECRET not in text + json.dumps(report) + metrics + repr(swap.status())
        proxy.allow()  # back
        swap.wait_until_available("m", version=2, timeout=TIMEOUT)
        assert answer(swap) == (2, Models.answer("b"))
        assert swap.remote_status()["m"].reachable is True
    finally:
        proxy.close()


def test_duplicated_reordered_and_dropped_queue_events_converge(
        tmp_path: Path, s3: Any, bucket: str, models: Models, run_swap: Any) -> None:
    import boto3

    sqs = boto3.client("sqs", region_name="us-east-1")
    queue = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:10]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue,
                                   AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    notify = {"QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]}
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=notify)
    url = f"s3://{bucket}/m"
    swap, events = run_swap(config_text(tmp_path, url,
                                     remote=f"poll_interval: 1h\nqueue: {queue}"))
    wait_for(lambda: swap.remote_status()["m"].reachable, what="first listing")
    publish(models.get("a"), url)  # one event per object: duplicates for one version
    swap.wait_until_available("m", timeout=TIMEOUT)  # no poll is due for an hour
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    publish(models.get("b"), url)  # its events are dropped
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=notify)
    old = json.dumps({"Records": [{"s3": {"bucket": {"name": bucket},
                                          "object": {"key": "m/1/saved_model.pb"}}}]})
    sqs.send_message(QueueUrl=queue, MessageBody=old)  # a late, reordered event for v1
    swap.wait_until_available("m", version=2, timeout=TIMEOUT)  # its listing finds v2
    publish(models.get("c"), url)
    swap.wait_until_available("m", version=3, timeout=TIMEOUT)
    assert answer(swap) == (3, Models.answer("c"))
    assert events.states(1).count(State.AVAILABLE) == 1 and State.ERROR not in events.states(3)


def test_start_up_never_finds_the_cache_folder_missing(tmp_path: Path, bucket: str,
                                                       models: Models, run_swap: Any) -> None:
    """The mirrors create the cache folders before the coordinator's first gate job lists
    them: no `base_path_unavailable` warning for a fresh cache."""
    url = f"s3://{bucket}/fresh/m"
    publish(models.get("a"), url)
    for attempt in range(3):
        with capture_logs() as logs:
            swap, _ = run_swap(config_text(tmp_path / str(attempt), url))
            assert swap.wait_until_available("m", timeout=TIMEOUT) == 1
            swap.stop()
        assert [e for e in logs if e["event"] == "base_path_unavailable"] == []
