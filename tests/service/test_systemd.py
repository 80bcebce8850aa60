"""The systemd units: `systemd-analyze verify`, the security exposure, and a full
load → swap → serve cycle of the real daemon under the unit's system call filter."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from conftest import Exports, wait_until
from daemon import DaemonProcess

ROOT = Path(__file__).resolve().parents[2]
UNITS = sorted((ROOT / "systemd").glob("*.service"))
ANALYZE = shutil.which("systemd-analyze")
pytestmark = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed "
                                 "(.ci/run installs it)")


def localized(unit: Path, tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this environment's modelswap."""
    binary = Path(sys.executable).parent / "modelswap"
    text = unit.read_text().replace("/opt/modelswap/bin/modelswap", str(binary))
    out = tmp_path / unit.name
    out.write_text(text)
    return out


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unit_verifies(unit: Path, tmp_path: Path) -> None:
    result = subprocess.run([ANALYZE, "verify", str(localized(unit, tmp_path))],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert unit.name not in result.stderr, result.stderr


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unit_security_exposure(unit: Path, tmp_path: Path) -> None:
    result = subprocess.run([ANALYZE, "security", "--offline=yes",
                             str(localized(unit, tmp_path))],
                            capture_output=True, text=True, check=False)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", result.stdout)
    assert match, result.stdout + result.stderr
    exposure, verdict = float(match.group(1)), match.group(2)
    print(f"{unit.name}: exposure {exposure} {verdict}")
    assert exposure <= 2.0 and verdict in ("OK", "SAFE")


def test_memory_deny_write_execute_not_set() -> None:
    for unit in UNITS:
        lines = [line for line in unit.read_text().splitlines() if not line.startswith("#")]
        assert not any(line.startswith("MemoryDenyWriteExecute") for line in lines)


@cache
def expand(group: str) -> frozenset[str]:
    out = subprocess.run([ANALYZE, "syscall-filter", group], capture_output=True, text=True,
                         check=True).stdout
    names: set[str] = set()
    for line in out.splitlines()[1:]:
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        names |= expand(entry) if entry.startswith("@") else {entry}
    return frozenset(names)


def unit_syscalls(unit: Path) -> frozenset[str]:
    """The syscalls the unit's SystemCallFilter= lines allow (allow-lists, then ~deny)."""
    allowed: set[str] = set()
    for line in unit.read_text().splitlines():
        if not line.startswith("SystemCallFilter="):
            continue
        value = line.split("=", 1)[1].strip()
        deny = value.startswith("~")
        names = set().union(*(expand(e) if e.startswith("@") else {e}
                              for e in value.lstrip("~").split()))
        allowed = allowed - names if deny else allowed | names
    return frozenset(allowed)


CONSUMER = '''
import os, tensorflow as tf

def run(swap, stop):
    seen = set()
    while not stop.is_set():
        try:
            with swap.acquire("m") as served:
                y = float(served.signatures["serving_default"](x=tf.constant([[2.0]]))["y"][0][0])
                if served.version not in seen:
                    seen.add(served.version)
                    with open(os.environ["SERVED_OUT"], "a") as f:
                        f.write(f"{served.version} {y}\\n")
        except LookupError:
            pass
        stop.wait(0.02)
'''


def test_daemon_cycle_under_the_units_syscall_filter(tmp_path: Path, exports: Exports) -> None:
    allowed = unit_syscalls(ROOT / "systemd" / "modelswap.service")
    assert {"read", "openat", "mmap", "clone3"} <= allowed and "reboot" not in allowed
    (tmp_path / "allowed.txt").write_text("\n".join(sorted(allowed)))
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "serve_check.py").write_text(CONSUMER)
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    served = tmp_path / "served.txt"
    config = tmp_path / "c.yaml"
    config.write_text(f"models:\n  - name: m\n    base_path: {base}\n"
                      f"consumers: ['serve_check:run']\npython_path: [{tmp_path / 'code'}]\n"
                      "http: {listen: '127.0.0.1:0'}\n")
    launcher = [sys.executable, str(Path(__file__).parent / "seccomp_exec.py"),
                str(tmp_path / "allowed.txt"), "--", sys.executable]
    d = DaemonProcess(config, tmp_path, env={"SERVED_OUT": str(served)}, launcher=launcher)
    try:
        d.wait_note(lambda n: n.get("READY") == "1", what="READY=1 under seccomp")
        exports.publish(base, 2, 2.0)
        d.wait_state("m", 1, "END")
        wait_until(lambda: served.exists() and "2 3.0" in served.read_text(),
                   what="v2 served by the consumer")
        assert d.stop() == 0, d.stderr
    finally:
        d.close()
    assert served.read_text().splitlines() == ["1 2.0", "2 3.0"]


DROP_INS = sorted((ROOT / "systemd" / "modelswap.service.d").glob("*.conf"))
COMBOS = [tuple(d for i, d in enumerate(DROP_INS) if mask >> i & 1)
          for mask in range(2 ** len(DROP_INS))]


def with_drop_ins(drop_ins: tuple[Path, ...], tmp_path: Path) -> Path:
    """The localized unit in a folder of its own, with these drop-ins in its `.d` folder."""
    unit = localized(ROOT / "systemd" / "modelswap.service", tmp_path)
    folder = tmp_path / "modelswap.service.d"
    folder.mkdir()
    for drop_in in drop_ins:
        shutil.copy(drop_in, folder / drop_in.name)
    return unit


def readme_exposure(drop_ins: tuple[Path, ...]) -> str | None:
    """The README's exposure row for this combination of drop-ins (None: not listed)."""
    label = " + ".join(f"`{d.name}`" for d in drop_ins) or "none"
    for line in (ROOT / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0] == label:
            return cells[1]
    return None


def test_drop_ins_each_relax_one_thing() -> None:
    assert [d.name for d in DROP_INS] == ["gpu.conf", "home.conf", "network.conf",
                                          "remote.conf"]
    for drop_in in DROP_INS:
        settings = [line for line in drop_in.read_text().splitlines()
                    if line and not line.startswith(("#", "["))]
        keys = {line.split("=", 1)[0] for line in settings}
        assert keys in ({"IPAddressDeny"}, {"ProtectHome"}, {"PrivateDevices", "DeviceAllow"},
                        {"CacheDirectory", "IPAddressDeny"})  # remote: adds a cache folder
    remote = (ROOT / "systemd" / "modelswap.service.d" / "remote.conf").read_text()
    assert "CacheDirectory=modelswap\n" in remote and "IPAddressDeny=\n" in remote


def test_readme_lists_each_drop_in_alone_and_all_together() -> None:
    for drop_ins in [(), *((d,) for d in DROP_INS), tuple(DROP_INS)]:
        assert readme_exposure(drop_ins) is not None, [d.name for d in drop_ins]


@pytest.mark.parametrize("drop_ins", COMBOS,
                         ids=lambda c: "+".join(d.stem for d in c) or "none")
def test_drop_ins_verify_and_score(drop_ins: tuple[Path, ...], tmp_path: Path) -> None:
    unit = with_drop_ins(drop_ins, tmp_path)
    verify = subprocess.run([ANALYZE, "verify", str(unit)], capture_output=True, text=True,
                            check=False)
    assert verify.returncode == 0 and "modelswap" not in verify.stderr, verify.stderr
    result = subprocess.run([ANALYZE, "security", "--offline=yes", str(unit)],
                            capture_output=True, text=True, check=False)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", result.stdout)
    assert match, result.stdout + result.stderr
    for drop_in in drop_ins:  # the drop-in was read: its relaxation shows in the report
        if drop_in.stem in ("network", "remote"):
            assert re.search(r"✗ IPAddressDeny=", result.stdout), result.stdout
        if drop_in.stem == "home":
            assert re.search(r"✗ ProtectHome=", result.stdout), result.stdout
        if drop_in.stem == "gpu":
            assert re.search(r"✗ PrivateDevices=", result.stdout), result.stdout
    exposure = f"{match.group(1)} {match.group(2)}"
    print(f"{[d.name for d in drop_ins]}: exposure {exposure}")
    assert float(match.group(1)) <= 2.0 and match.group(2) in ("OK", "SAFE")
    version = subprocess.run([ANALYZE, "--version"], capture_output=True, text=True,
                             check=True).stdout.split()[1]
    listed = readme_exposure(drop_ins)
    if version == "252" and listed is not None:  # the README was measured with systemd 252
        assert listed == exposure
