"""Manifest, redaction, publish rules and the remote gate's verdicts, on memory:// and file://."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import obstore
import pytest

from modelswap.watch.remote import (
    CLAIM_NAME,
    MANIFEST_NAME,
    Manifest,
    ManifestError,
    Mirror,
    RemoteConfig,
    RemoteError,
    build_manifest,
    cli_publish,
    open_remote,
    publish,
    redact,
)
from modelswap.watch.remote.manifest import verify_dir
from watch.remote.remote_helpers import TIMEOUT, Models, wait_for


def memory_url() -> str:
    return f"memory://{uuid.uuid4().hex[:8]}/models/m"


def mirror_for(tmp_path: Path, url: str, **kw: object) -> Mirror:
    m = Mirror("m", url, RemoteConfig(cache_dir=tmp_path / "cache", poll_interval=3600.0),
               **kw)  # type: ignore[arg-type]
    m.prepare()
    return m


def test_redact_hides_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", "c2VjcmV0LWtleS12YWx1ZQ==")
    text = ("GET https://user:pa55@acct.blob.core.windows.net/c/m?sig=abc&se=2030 failed; "
            "key c2VjcmV0LWtleS12YWx1ZQ==")
    shown = redact(text)
    assert "pa55" not in shown and "sig=abc" not in shown and "c2VjcmV0" not in shown
    assert "acct.blob.core.windows.net/c/m" in shown
    assert redact("abfs://container@acct.dfs.core.windows.net/m") == (
        "abfs://container@acct.dfs.core.windows.net/m")  # a container name is no secret


def test_open_remote_refuses_what_it_cannot_use(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in [v for v in os.environ if v.startswith("AZURE_")]:
        monkeypatch.delenv(var)
    with pytest.raises(RemoteError) as e:
        open_remote("ftp://host/x")
    assert e.value.kind == "invalid"
    with pytest.raises(RemoteError) as e:
        open_remote("s3://bucket/p?X-Amz-Signature=secret")
    assert "secret" not in str(e.value)
    with pytest.raises(RemoteError) as e:  # no account anywhere: misconfigured for good
        Mirror("m", "az://container/m")
    assert e.value.kind == "invalid"


def test_manifest_round_trip_and_verify(tmp_path: Path, models: Models) -> None:
    src = models.get("a")
    manifest = build_manifest(src, 3)
    assert manifest.tags == (("serve",),)
    assert Manifest.from_json(manifest.to_json()) == manifest
    assert verify_dir(src, manifest) is None
    copy = tmp_path / "copy"
    shutil.copytree(src, copy)
    with open(copy / "saved_model.pb", "r+b") as f:  # same size, one byte flipped
        first = f.read(1)
        f.seek(0)
        f.write(bytes([first[0] ^ 1]))
    assert "crc32c" in (verify_dir(copy, manifest) or "")


@pytest.mark.parametrize("path", ["../escape", "/etc/passwd", "a//b", "a/./b", "a\\b", ""])
def test_manifest_rejects_unsafe_paths(path: str) -> None:
    doc = {"format": "modelswap-manifest/1", "version": 1, "tags": [["serve"]], "files": [
        {"path": "saved_model.pb", "size": 1, "crc32c": "0" * 8, "sha256": "0" * 64},
        {"path": path, "size": 1, "crc32c": "0" * 8, "sha256": "0" * 64}]}
    with pytest.raises(ManifestError):
        Manifest.from_json(json.dumps(doc).encode())


def test_a_malicious_manifest_writes_nothing(tmp_path: Path, models: Models) -> None:
    url = memory_url()
    publish(models.get("a"), url)
    remote = open_remote(url)
    doc = json.loads(bytes(obstore.get(remote.store, remote.key(f"1/{MANIFEST_NAME}")).bytes()))
    doc["files"][0]["path"] = "../../../../outside"
    obstore.put(remote.store, remote.key(f"1/{MANIFEST_NAME}"), json.dumps(doc).encode())
    mirror = mirror_for(tmp_path, url)
    assert mirror.poll_once()
    v = mirror.status().version(1)
    assert v is not None and v.state == "failed" and "unsafe path" in (v.reason or "")
    assert sorted(os.listdir(tmp_path)) == ["cache"] and os.listdir(mirror.local_dir) == []


def test_publish_numbers_and_immutability(models: Models) -> None:
    url = memory_url()
    assert publish(models.get("a"), url, version=5) == 5
    assert publish(models.get("b"), url) == 6
    with pytest.raises(RemoteError) as e:
        publish(models.get("c"), url, version=5)
    assert e.value.kind == "exists"
    remote = open_remote(url)
    keys = {m["path"] for chunk in obstore.list(remote.store, "models/m/") for m in chunk}
    assert f"models/m/6/{MANIFEST_NAME}" in keys
    assert not any(k.endswith(CLAIM_NAME) for k in keys)  # claims are removed when done


def test_cli_publish_reports_one_line(tmp_path: Path, models: Models) -> None:
    out: list[str] = []
    err: list[str] = []
    url = memory_url()
    assert cli_publish(str(models.get("a")), url, out=out.append, err=err.append) == 0
    assert out == [f"published {url}/1"]
    assert cli_publish(str(tmp_path), url, out=out.append, err=err.append) == 1
    assert len(err) == 1 and "no saved_model.pb" in err[0]


def test_publish_refuses_a_folder_with_a_short_shard(tmp_path: Path, models: Models) -> None:
    src = tmp_path / "v"
    shutil.copytree(models.get("a"), src)
    os.truncate(next((src / "variables").glob("*.data-*")), 2)
    with pytest.raises(ManifestError, match="short"):
        publish(src, memory_url())


def test_tag_mismatch_is_an_error_naming_the_tag_sets(tmp_path: Path, models: Models) -> None:
    url = memory_url()
    publish(models.get("a"), url)
    raw = open_remote(url)
    for p in sorted(models.get("b").rglob("*")):  # version 2: a raw copy, no manifest
        if p.is_file():
            obstore.put(raw.store, raw.key(f"2/{p.relative_to(models.get('b')).as_posix()}"), p)
    mirror = mirror_for(tmp_path, url, tags=("serve", "gpu"))
    assert mirror.poll_once()
    for n in (1, 2):
        v = mirror.status().version(n)
        assert v is not None and v.state == "failed" and "['serve']" in (v.reason or ""), v


def test_a_publish_in_progress_waits_for_its_manifest(tmp_path: Path, models: Models) -> None:
    url = memory_url()
    remote = open_remote(url)
    src = models.get("a")
    for p in sorted(src.rglob("*")):
        if p.is_file():
            obstore.put(remote.store, remote.key(f"1/{p.relative_to(src).as_posix()}"), p)
    obstore.put(remote.store, remote.key(f"1/{CLAIM_NAME}"), b"")
    mirror = mirror_for(tmp_path, url)
    assert mirror.poll_once()
    v = mirror.status().version(1)
    assert v is not None and v.state == "incomplete" and "publish in progress" in (v.reason or "")


def test_two_folders_naming_one_version(tmp_path: Path, models: Models) -> None:
    root = tmp_path / "repo"
    publish(models.get("a"), root.as_uri(), version=7)
    shutil.copytree(root / "7", root / "007")
    mirror = mirror_for(tmp_path, root.as_uri())
    assert mirror.poll_once()
    v = mirror.status().version(7)
    assert v is not None and v.state == "failed" and "007" in (v.reason or "")


def test_memory_store_end_to_end(tmp_path: Path, models: Models) -> None:
    url = memory_url()
    publish(models.get("a"), url)
    with mirror_for(tmp_path, url) as mirror:
        wait_for(lambda: (v := mirror.status().version(1)) is not None and v.state == "mirrored")
    assert verify_dir(mirror.local_dir / "1", build_manifest(models.get("a"), 1)) is None


def test_no_download_without_the_disk_space(tmp_path: Path, models: Models) -> None:
    url = memory_url()
    publish(models.get("a"), url)
    mirror = mirror_for(tmp_path, url, min_free=1 << 62)  # more than any disk has free
    assert mirror.poll_once()
    wait_for(lambda: (v := mirror.status().version(1)) is not None and v.state == "failed")
    v = mirror.status().version(1)
    assert v is not None and "not enough disk space" in (v.reason or "")
    assert os.listdir(mirror.local_dir) == []


def test_a_base_path_that_appears_later(tmp_path: Path, models: Models) -> None:
    root = tmp_path / "not-mounted-yet"
    mirror = mirror_for(tmp_path, root.as_uri())
    assert not mirror.poll_once()
    assert mirror.status().reachable is False
    publish(models.get("a"), root.as_uri())  # creates the folder
    assert mirror.poll_once()
    wait_for(lambda: (v := mirror.status().version(1)) is not None and v.state == "mirrored")


def test_start_writeback_starts_write_out_and_never_fails(tmp_path: Path) -> None:
    from modelswap.watch.remote import writeback

    path = tmp_path / "f"
    with open(path, "wb") as f:
        f.write(b"x" * 100_000)
        f.flush()
        writeback.start_writeback(f.fileno(), 0, 100_000)
        writeback.start_writeback(f.fileno(), 0, 0)
        os.fsync(f.fileno())
    writeback.start_writeback(-1, 0, 1)  # EBADF: ignored, and still in use afterwards
    if os.uname().sysname == "Linux":
        assert writeback._sync_file_range is not None
    assert path.read_bytes() == b"x" * 100_000


def test_download_fetches_files_side_by_side_and_one_bad_file_fails_it(
        tmp_path: Path, models: Models, monkeypatch: pytest.MonkeyPatch) -> None:
    import itertools
    import threading
    from collections.abc import Iterator

    from modelswap.watch.remote.cache import Cache
    from modelswap.watch.remote.client import Client
    from modelswap.watch.remote.download import DownloadError, download
    from modelswap.watch.remote.judge import judge
    from modelswap.watch.remote.listing import list_version

    url = memory_url()
    publish(models.get("vocab"), url)
    client = Client(open_remote(url))
    _, plan = judge(client, list_version(client, "1", 1), ("serve",))
    assert plan is not None and plan.manifest is not None and len(plan.files) >= 4
    cache = Cache(tmp_path / "cache", "m")
    cache.prepare()
    both = threading.Barrier(2, timeout=TIMEOUT)  # passed only by two files fetched at once
    calls, real = itertools.count(), client.stream

    def stream(rel: str, **kw: Any) -> Iterator[bytes]:
        if next(calls) < 2:
            both.wait()
        yield from real(rel, **kw)

    monkeypatch.setattr(client, "stream", stream)
    done = download(client, cache, plan)
    monkeypatch.undo()
    assert verify_dir(done, plan.manifest) is None
    assert json.loads((done / MANIFEST_NAME).read_bytes()) == json.loads(plan.manifest_bytes or b"")
    # the same version with one small file damaged (same size): the whole download fails
    # with that file's checksum error, not the "stopped" of the files it cut short
    store = client.remote
    key = store.key("1/saved_model.pb")
    damaged = bytes(b ^ 0xFF for b in bytes(obstore.get(store.store, key).bytes()))
    obstore.put(store.store, key, damaged)
    _, plan = judge(client, list_version(client, "1", 1), ("serve",))
    assert plan is not None
    other = Cache(tmp_path / "other", "m")
    other.prepare()
    with pytest.raises(DownloadError) as caught:
        download(client, other, plan)
    assert caught.value.kind == "checksum" and "saved_model.pb" in str(caught.value)
    assert list(other.dir.iterdir()) == []  # the .incoming folder is gone


def test_start_writeback_does_nothing_where_sync_file_range_is_missing_or_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ctypes
    import errno

    from modelswap.watch.remote import writeback

    def windows(name: object, *args: object, **kw: object) -> object:
        raise TypeError("LoadLibrary() argument 1 must be str, not None")

    class NoSymbol:  # macOS, the BSDs: a C library without sync_file_range
        def __init__(self, *args: object, **kw: object) -> None:
            pass

        def __getattr__(self, name: str) -> object:
            raise AttributeError(name)

    for fake in (windows, NoSymbol):
        monkeypatch.setattr(ctypes, "CDLL", fake)
        assert writeback._load() is None  # no binding, no import error
    monkeypatch.undo()

    calls: list[int] = []

    def refused(fd: int, offset: int, length: int, flags: int) -> int:
        calls.append(flags)  # a syscall filter (systemd's SystemCallErrorNumber=EPERM)
        ctypes.set_errno(errno.EPERM)
        return -1

    monkeypatch.setattr(writeback, "_sync_file_range", refused)
    with open(tmp_path / "f", "wb") as f:
        f.write(b"x" * 10)
        f.flush()
        writeback.start_writeback(f.fileno(), 0, 10)
        writeback.start_writeback(f.fileno(), 0, 10)  # not tried again
    assert calls == [2] and writeback._sync_file_range is None  # SYNC_FILE_RANGE_WRITE
