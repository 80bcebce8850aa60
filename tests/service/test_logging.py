"""Embedded, modelswap configures no logging; `configure_logging(config.logging)` applies the
YAML section; warnings go through the same renderer (one JSON object per line)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import TIMEOUT, Exports

HOST = '''
import sys, warnings
from modelswap import ModelSwap, configure_logging, parse_config

config = parse_config(sys.argv[1])
if sys.argv[2] == "configure":
    configure_logging(config.logging)
with ModelSwap(config) as swap:
    swap.wait_until_available("m", timeout=60)
warnings.warn("Callback with id 'x' already exists for watch 3. It will be Overwritten.",
              RuntimeWarning)
warnings.warn("something else", UserWarning)
'''


def host(tmp_path: Path, base: Path, mode: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "host.py"
    script.write_text(textwrap.dedent(HOST))
    text = f"models:\n  - name: m\n    base_path: {base}\nlogging: {{format: json}}\n"
    return subprocess.run([sys.executable, str(script), text, mode], capture_output=True,
                          text=True, timeout=TIMEOUT * 2, check=False,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def test_embedded_without_set_up_prints_nothing(tmp_path: Path, exports: Exports) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    done = host(tmp_path, base, "leave")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # no INFO events on the host's stdout
    assert "version_state" not in done.stderr and "AVAILABLE" not in done.stderr


def test_configure_logging_applies_the_yaml_section(tmp_path: Path, exports: Exports) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    done = host(tmp_path, base, "configure")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]  # every line is JSON
    assert any(r["event"] == "version_state" and r.get("state") == "AVAILABLE"
               for r in records)
    warned = [r for r in records if r.get("logger") == "py.warnings"]
    assert len(warned) == 1 and "something else" in warned[0]["event"]
    assert "Callback with id" not in done.stdout + done.stderr
    assert "UserWarning" not in done.stderr
