"""Mirror against moto's real S3 server: publish, raw uploads, checksums, deletes, strays."""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import obstore

from modelswap.watch.remote import MANIFEST_NAME, Mirror, RemoteConfig, open_remote, publish
from watch.remote.remote_helpers import Models, predict, wait_for


def config(tmp_path: Path, **kw: Any) -> RemoteConfig:
    return RemoteConfig(cache_dir=tmp_path / "cache", **{"poll_interval": 3600.0, **kw})


def state(mirror: Mirror, n: int) -> str | None:
    v = mirror.status().version(n)
    return v.state if v else None


def upload_dir(s3: Any, bucket: str, key_prefix: str, src: Path, order: list[str]) -> None:
    for rel in order:
        s3.put_object(Bucket=bucket, Key=f"{key_prefix}/{rel}", Body=(src / rel).read_bytes())


def files_of(src: Path) -> list[str]:
    return sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file())


def test_publish_then_mirrored_and_loads(tmp_path: Path, bucket: str, models: Models) -> None:
    url = f"s3://{bucket}/prod/linear"
    assert publish(models.get("a"), url) == 1
    assert publish(models.get("b"), url) == 2  # the next number after the highest
    mirror = Mirror("linear", url, config(tmp_path))
    with mirror:
        wait_for(lambda: {state(mirror, 1), state(mirror, 2)} == {"mirrored"}, what="mirrored")
        local = mirror.local_dir
        assert sorted(p.name for p in local.iterdir()) == ["1", "2"]  # no .incoming left
        assert predict(local / "2") == Models.answer("b")
        assert (local / "1" / MANIFEST_NAME).is_file()
        before = mirror.counters.snapshot()
        assert mirror.poll_once()
        after = mirror.counters.snapshot()
    # a settled model costs one delimiter listing per poll, and nothing is fetched again
    assert after["list"] - before["list"] == 1
    assert after["get"] == before["get"] and after["head"] == before["head"]
    total = sum(p.stat().st_size for p in (local / "2").rglob("*") if p.name != MANIFEST_NAME)
    assert before["bytes_downloaded"] >= total


def test_raw_upload_in_a_bad_order_is_never_mirrored_early(
        tmp_path: Path, s3: Any, bucket: str, models: Models) -> None:
    src = models.get("vocab")
    mirror = Mirror("m", f"s3://{bucket}/m", config(tmp_path))
    mirror.prepare()
    shard = next(f for f in files_of(src) if ".data-" in f)
    full = (src / shard).read_bytes()
    steps = [
        (["saved_model.pb"], "assets/vocab-vocab.txt missing"),
        ([f for f in files_of(src) if f.startswith("assets/")],
         "variables/variables.index missing"),
        (["variables/variables.index"], f"{shard} missing"),
    ]
    for rels, reason in steps:
        upload_dir(s3, bucket, "m/00000007", src, rels)
        assert mirror.poll_once()
        status = mirror.status().version(7)
        assert status is not None and status.state == "incomplete", status
        assert reason in (status.reason or ""), status
        assert not (mirror.local_dir / "7").exists()
    s3.put_object(Bucket=bucket, Key=f"m/00000007/{shard}", Body=full[: len(full) // 2])
    assert mirror.poll_once()
    assert f"{len(full) // 2} of" in (mirror.status().version(7).reason or "")  # type: ignore[union-attr]
    s3.put_object(Bucket=bucket, Key=f"m/00000007/{shard}", Body=full)
    rest = [f for f in files_of(src) if f not in ("saved_model.pb", "variables/variables.index",
                                                  shard) and not f.startswith("assets/")]
    upload_dir(s3, bucket, "m/00000007", src, rest)
    assert mirror.poll_once()
    wait_for(lambda: state(mirror, 7) == "mirrored", what="mirrored")
    mirror.stop()
    assert predict(mirror.local_dir / "7") == Models.answer("vocab")
    assert (mirror.local_dir / "7" / "assets" / "vocab-vocab.txt").read_text() == "alpha\nbeta\n"


def test_an_unchanged_incomplete_version_costs_less_and_less(
        tmp_path: Path, s3: Any, bucket: str, models: Models) -> None:
    upload_dir(s3, bucket, "m/3", models.get("a"), ["saved_model.pb"])
    mirror = Mirror("m", f"s3://{bucket}/m", config(tmp_path))
    mirror.prepare()
    assert mirror.poll_once()
    before = mirror.counters.snapshot()
    assert mirror.poll_once(full=False)  # unchanged: listed (2 requests), not read again
    after = mirror.counters.snapshot()
    assert after["get"] == before["get"] and after["list"] - before["list"] == 2
    assert state(mirror, 3) == "incomplete"
    assert mirror.poll_once(full=False)  # an abandoned upload: periodic polls back off...
    assert mirror.counters.snapshot()["list"] - after["list"] == 1
    upload_dir(s3, bucket, "m/3", models.get("a"), files_of(models.get("a")))
    assert mirror.poll_once()  # ...but a hinted (full) poll looks again
    wait_for(lambda: state(mirror, 3) == "mirrored", what="mirrored")
    mirror.stop()


def test_checksum_failure_is_discarded_and_retried(
        tmp_path: Path, s3: Any, bucket: str, models: Models) -> None:
    src = models.get("a")
    url = f"s3://{bucket}/m"
    publish(src, url, version=4)
    shard = next(f for f in files_of(src) if ".data-" in f)
    good = (src / shard).read_bytes()
    s3.put_object(Bucket=bucket, Key=f"m/4/{shard}", Body=bytes(b ^ 0xFF for b in good))
    mirror = Mirror("m", url, config(tmp_path), retry_initial=0.05, retry_max=0.2)
    with mirror:
        wait_for(lambda: mirror.counters.snapshot().get("checksum_failures", 0) >= 2,
                 what="checksum failures")
        v = mirror.status().version(4)
        assert v is not None and v.state in ("failed", "downloading")
        assert not (mirror.local_dir / "4").exists()
        s3.put_object(Bucket=bucket, Key=f"m/4/{shard}", Body=good)
        wait_for(lambda: state(mirror, 4) == "mirrored", what="mirrored after repair")
    assert predict(mirror.local_dir / "4") == Models.answer("a")
    assert [p.name for p in mirror.local_dir.iterdir()] == ["4"]


def test_leftovers_of_a_killed_run_are_removed_and_the_download_restarts(
        tmp_path: Path, bucket: str, models: Models) -> None:
    url = f"s3://{bucket}/m"
    publish(models.get("a"), url)
    local = tmp_path / "cache" / "m"
    shutil.copytree(models.get("b"), local / ".incoming-1")  # a half-done download...
    os.truncate(next((local / ".incoming-1" / "variables").glob("*.data-*")), 3)
    (local / ".deleting-9-123").mkdir()  # ...and a half-done prune
    with Mirror("m", url, config(tmp_path)) as mirror:
        assert not (local / ".incoming-1").exists() or state(mirror, 1) == "downloading"
        wait_for(lambda: state(mirror, 1) == "mirrored", what="mirrored")
    assert sorted(p.name for p in local.iterdir()) == ["1"]
    assert predict(local / "1") == Models.answer("a")


def test_version_deleted_remotely_is_pruned_unless_kept(
        tmp_path: Path, s3: Any, bucket: str, models: Models) -> None:
    url = f"s3://{bucket}/m"
    publish(models.get("a"), url)
    publish(models.get("b"), url)
    kept: set[int] = set()
    changes: list[tuple[int, str]] = []
    mirror = Mirror("m", url, config(tmp_path), keep=lambda: kept,
                    on_change=lambda n, what: changes.append((n, what)))
    mirror.prepare()
    assert mirror.poll_once()
    wait_for(lambda: {state(mirror, 1), state(mirror, 2)} == {"mirrored"}, what="mirrored")

    def delete(prefix: str) -> None:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": o["Key"]} for o in listed]})

    delete("m/1/")
    assert mirror.poll_once()
    assert not (mirror.local_dir / "1").exists() and state(mirror, 1) is None
    kept.add(2)  # the serving version: the policy keeps it although it left the store
    delete("m/2/")
    assert mirror.poll_once()
    v2 = mirror.status().version(2)
    assert v2 is not None and v2.state == "mirrored" and not v2.in_store
    assert predict(mirror.local_dir / "2") == Models.answer("b")
    assert (1, "pruned") in changes and (2, "mirrored") in changes


def test_policy_decides_what_is_mirrored(tmp_path: Path, bucket: str, models: Models) -> None:
    url = f"s3://{bucket}/m"
    for name in ("a", "b", "c"):
        publish(models.get(name), url)
    mirror = Mirror("m", url, config(tmp_path), wanted=lambda vs: set(vs[-1:]))
    mirror.prepare()
    assert mirror.poll_once()
    wait_for(lambda: state(mirror, 3) == "mirrored", what="newest mirrored")
    assert [p.name for p in mirror.local_dir.iterdir()] == ["3"]
    assert {state(mirror, 1), state(mirror, 2)} == {"listed"}
    mirror.stop()


def _strays_then_mirror(tmp_path: Path, url: str, put: Any, strays: int,
                        models: Models) -> Mirror:
    publish(models.get("a"), url, version=12)
    keys = [f"stray-{i:05d}.log" for i in range(strays)] + [
        f"{d}/x" for d in ("logs", "0", "12a", "tmp-5", "-3")] + ["README"]
    put(keys)
    mirror = Mirror("m", url, config(tmp_path))
    mirror.prepare()
    assert mirror.poll_once()
    wait_for(lambda: state(mirror, 12) == "mirrored", what="mirrored")
    assert [v.version for v in mirror.status().versions] == [12]
    return mirror


def test_a_bucket_with_many_stray_objects(
        tmp_path: Path, bucket: str, models: Models) -> None:
    url = f"s3://{bucket}/m"
    remote = open_remote(url)

    def put(keys: list[str]) -> None:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda k: obstore.put(remote.store, k, b"x"), keys))

    mirror = _strays_then_mirror(tmp_path, url, put, 1100, models)
    lists = mirror.counters.snapshot()["list"]
    assert mirror.poll_once()
    assert mirror.counters.snapshot()["list"] - lists == 2  # 1,107 keys: two pages of 1,000
    assert predict(mirror.local_dir / "12") == Models.answer("a")


def test_ten_thousand_stray_objects(tmp_path: Path, models: Models) -> None:
    root = tmp_path / "repo"
    root.mkdir()

    def put(keys: list[str]) -> None:
        for key in keys:
            if "/" in key:
                (root / key).parent.mkdir()
            (root / key).write_bytes(b"x")

    mirror = _strays_then_mirror(tmp_path, root.as_uri(), put, 10_000, models)
    assert mirror.poll_once()
    assert (mirror.local_dir / "12" / "saved_model.pb").is_file()
