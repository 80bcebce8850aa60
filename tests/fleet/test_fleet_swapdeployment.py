"""`modelswap.ray.SwapDeployment` as Serve drives it, without Ray: start and wait in
`__init__`, `check_health`, `reconfigure(user_config)` as a reload, `__del__`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelswap.config import parse_config
from modelswap.fleet.status import FLEET_DIR

pytest.importorskip("ray.serve")
from modelswap.ray import SwapDeployment, config_from


def yaml(base: Path, extra: str = "") -> str:
    return f"models:\n  - name: m\n    base_path: {base}\n{extra}service:\n  require: all\n"


def test_config_sources(tmp_path: Path) -> None:
    text = yaml(tmp_path)
    (tmp_path / "c.yaml").write_text(text)
    want = parse_config(text).models
    for source in (text, tmp_path / "c.yaml", str(tmp_path / "c.yaml"), {"config_yaml": text},
                   {"config_path": str(tmp_path / "c.yaml")},
                   {"models": [{"name": "m", "base_path": str(tmp_path)}]}):
        assert config_from(source).models == want, source


def test_replica_lifecycle(tmp_path: Path, exports: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    exports.publish(base, 2, 2.0)
    replica = SwapDeployment(yaml(base), fleet_status=True, member="r0")
    try:
        assert replica.swap.ready()  # __init__ returned once `service.require` was met
        replica.check_health()
        with replica.swap.acquire("m") as served:
            assert served.version == 2
        replica.reconfigure({"config_yaml": yaml(base, "    version_policy: {specific: [1]}\n")})
        assert replica.swap.wait_until_available("m", 1, timeout=60) == 1
        with replica.swap.acquire("m", 1) as served:
            assert served.version == 1
        with pytest.raises(Exception, match="version_policy"):
            replica.reconfigure({"models": [{"name": "m", "base_path": str(base),
                                             "version_policy": "newest"}]})
        replica.check_health()  # a bad user_config changes nothing
    finally:
        replica.__del__()  # what Serve calls when it stops the replica
    assert list((base / FLEET_DIR).iterdir()) == []  # its status object left with it
    with pytest.raises(RuntimeError, match="no config yet"):
        replica.check_health()


def test_config_from_user_config_only(tmp_path: Path, exports: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    replica = SwapDeployment()
    with pytest.raises(RuntimeError, match="no config yet"):
        replica.check_health()
    replica.reconfigure({"config_yaml": yaml(base)})  # Serve's first call starts the swap
    try:
        replica.check_health()
        with replica.swap.acquire("m") as served:
            assert served.version == 1
    finally:
        replica.shutdown()


def test_not_ready_in_time_fails_the_replica(tmp_path: Path) -> None:
    with pytest.raises(TimeoutError, match=r"modelswap not ready after 0\.5s: 0/1 models"):
        SwapDeployment(yaml(tmp_path / "empty"), ready_timeout=0.5)
