"""`modelswap publish` and `modelswap inspect URL` (in process, on a file:// store), and
`modelswap status` rendering a remote model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import Exports
from modelswap.cli.main import main
from modelswap.cli.status import render_status


def test_publish_then_inspect_a_remote_base_path(
        tmp_path: Path, exports: Exports, capsys: pytest.CaptureFixture[str]) -> None:
    src = exports.get(2.0)
    url = f"file://{tmp_path}/store/ranker"
    assert main(["publish", str(src), url]) == 0
    assert main(["publish", str(src), url]) == 0  # the next number
    assert capsys.readouterr().out.splitlines() == [f"published {url}/1", f"published {url}/2"]
    assert main(["publish", str(src), url, "--version", "2"]) == 1  # versions are immutable
    assert "version 2 is already published" in capsys.readouterr().err
    assert main(["inspect", url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(v["version"], v["complete"], v["proof"]) for v in report["versions"]] == [
        (2, True, "manifest"), (1, True, "manifest")]
    raw = tmp_path / "store" / "ranker" / "3"  # another tool's upload, cut short
    shutil.copytree(src, raw)
    shard = next((raw / "variables").glob("variables.data-*"))
    shard.write_bytes(shard.read_bytes()[:10])
    assert main(["inspect", url]) == 1
    out = capsys.readouterr().out
    assert (f"version 3: not complete: content proof: variables/{shard.name}: 10 of"
            in out and "(IncompleteModel)" in out)
    assert "content proof" in out and "version 2: complete" in out
    assert main(["inspect", "--tags", "gpu", url]) == 1
    assert "no MetaGraph with tags ['gpu']" in capsys.readouterr().out
    assert main(["inspect", f"file://{tmp_path}/nothing-here"]) == 2  # cannot be listed
    assert "modelswap: inspect: unreachable: " in capsys.readouterr().err


def test_inspect_config_shows_the_store_and_the_cache(
        tmp_path: Path, exports: Exports, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"file://{tmp_path}/store/ranker"
    assert main(["publish", str(exports.get(2.0)), url]) == 0
    config = tmp_path / "c.yaml"
    config.write_text(f"models:\n  - name: ranker\n    base_path: {url}\n"
                      f"remote:\n  cache_dir: {tmp_path}/cache\n")
    capsys.readouterr()
    assert main(["inspect", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"remote {url}, mirrored into {tmp_path}/cache/ranker" in out
    assert "version 1: complete" in out


def test_status_renders_the_remote_store() -> None:
    report = {"ready": True, "models": [{
        "name": "ranker", "base_path": "/c/ranker", "served_version": 7, "versions": [
            {"version": 8, "state": "WAITING", "age_s": 1, "error_type": "Downloading",
             "error": "downloading 12/40 MB"},
            {"version": 7, "state": "AVAILABLE", "age_s": 90}],
        "remote": {"url": "s3://b/ranker", "reachable": False, "error_kind": "unreachable",
                   "error": "connection refused", "downloading": [
                       {"version": 8, "bytes_done": 12, "bytes_total": 40}],
                   "requests": {"list": 3, "get": 2, "head": 0}}}]}
    text = render_status(report)
    assert "Downloading: downloading 12/40 MB" in text
    assert ("ranker: s3://b/ranker UNREACHABLE  (unreachable: connection refused)  "
            "downloading v8 12/40 B  requests get 2, head 0, list 3") in text
