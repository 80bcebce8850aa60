"""Trust checks: folders other users could write are refused, like sshd's StrictModes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from conftest import Exports, predict, yaml_for
from modelswap import State


def test_world_writable_base_refused_until_fixed(tmp_path: Path, exports: Exports,
                                                 run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    base.chmod(0o777)
    swap, events = run_swap(yaml_for(base))
    event = events.wait_state(1, State.ERROR)
    assert event.error_type == "Untrusted"
    assert event.error == f"{base} is writable by group and others (mode 777)"
    assert State.LOADING not in events.states(1)
    base.chmod(0o755)
    exports.publish(base, 2, 2.0)  # an event; the rescan would find the fix too
    swap.wait_until_available("m", version=2, timeout=60)


def test_group_writable_version_and_foreign_owner(tmp_path: Path, exports: Exports,
                                                  run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    swap, events = run_swap(yaml_for(base))
    swap.wait_until_available("m", timeout=60)
    v2 = exports.publish(base, 2, 2.0, how="copy")
    v2.chmod(0o775)
    assert "group" in (events.wait_state(2, State.ERROR).error or "")
    v3 = tmp_path / "stage3"
    exports.publish(tmp_path, "stage3", 3.0)
    os.chown(v3 / "saved_model.pb", 12345, 0)
    os.replace(v3, base / "3")
    events.wait(lambda evs: any(e.version == 3 and "owned by uid 12345" in (e.error or "")
                                for e in evs))
    with swap.acquire("m") as served:
        assert served.version == 1 and predict(served) == 2.0


def test_symlinked_version_followed_only_to_trusted_target(tmp_path: Path, exports: Exports,
                                                           run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    good = exports.publish(tmp_path, "good", 1.0)
    bad = exports.publish(tmp_path, "bad", 2.0)
    bad.chmod(0o777)
    (base / "1").symlink_to(good)
    swap, events = run_swap(yaml_for(base))
    swap.wait_until_available("m", version=1, timeout=60)
    (base / "2").symlink_to(bad)
    event = events.wait_state(2, State.ERROR)
    assert event.error_type == "Untrusted" and "writable by group and others" in (event.error
                                                                                   or "")


def test_trust_off(tmp_path: Path, exports: Exports, run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    base.chmod(0o777)
    swap, _ = run_swap(yaml_for(base, "trust: false"))
    swap.wait_until_available("m", timeout=60)


def _chown_tree(root: Path, uid: int, gid: int, mode_dirs: int = 0o755,
                mode_files: int = 0o644) -> None:
    for path in [root, *root.rglob("*")]:
        os.chown(path, uid, gid)
        path.chmod(mode_dirs if path.is_dir() else mode_files)


PIPELINE_UID, MODELS_GID, OTHER_GID = 1001, 1500, 1600  # ids only: no names needed


def test_owner_group_allowed_loads_other_group_refused(tmp_path: Path, exports: Exports,
                                                       run_swap: Any) -> None:
    """Folders written by the pipeline's user (not root, not us): trusted through its group."""
    base = tmp_path / "m"
    base.mkdir()
    v1 = exports.publish(tmp_path, "stage1", 1.0)
    _chown_tree(v1, PIPELINE_UID, MODELS_GID)
    os.replace(v1, base / "1")
    swap, events = run_swap(yaml_for(base, top=f"trust:\n  owners: ['group:{MODELS_GID}']\n"))
    swap.wait_until_available("m", version=1, timeout=60)
    v2 = exports.publish(tmp_path, "stage2", 2.0)
    _chown_tree(v2, PIPELINE_UID, OTHER_GID)
    os.replace(v2, base / "2")
    event = events.wait_state(2, State.ERROR)
    assert event.error_type == "Untrusted"
    assert f"owned by uid {PIPELINE_UID} (gid {OTHER_GID})" in (event.error or "")
    with swap.acquire("m") as served:
        assert served.version == 1 and predict(served) == 2.0


def test_group_writable_by_allowed_group_only(tmp_path: Path, exports: Exports,
                                              run_swap: Any) -> None:
    """A shared `models` group: setgid, group-writable folders pass only for that group."""
    base = tmp_path / "m"
    base.mkdir()
    os.chown(base, PIPELINE_UID, MODELS_GID)
    base.chmod(0o2775)
    v1 = exports.publish(tmp_path, "stage1", 1.0)
    _chown_tree(v1, PIPELINE_UID, MODELS_GID, 0o2775, 0o664)
    os.replace(v1, base / "1")
    top = (f"trust:\n  owners: [{PIPELINE_UID}]\n"
           f"  group_writable_by: [{MODELS_GID}]\n")
    swap, events = run_swap(yaml_for(base, top=top))
    swap.wait_until_available("m", version=1, timeout=60)
    v2 = exports.publish(tmp_path, "stage2", 2.0)
    _chown_tree(v2, PIPELINE_UID, OTHER_GID, 0o2775, 0o664)
    os.replace(v2, base / "2")
    event = events.wait_state(2, State.ERROR)
    assert event.error_type == "Untrusted"
    assert f"writable by group {OTHER_GID}" in (event.error or "")


def test_model_trust_mapping_replaces_the_default(tmp_path: Path, exports: Exports,
                                                  run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    v1 = exports.publish(tmp_path, "stage1", 1.0)
    _chown_tree(v1, PIPELINE_UID, OTHER_GID)
    os.replace(v1, base / "1")
    swap, _ = run_swap(yaml_for(base, f"trust: {{owners: [{PIPELINE_UID}]}}",
                                top=f"trust:\n  owners: ['group:{MODELS_GID}']\n"))
    swap.wait_until_available("m", version=1, timeout=60)
