"""Every code block of the README runs as written: Python snippets against the bundled
example model, YAML as config (fragments after a minimal `models:`), the systemd drop-in
through `systemd-analyze verify`. Shell blocks are run by hand (they install, or need a
running daemon or systemd)."""

from __future__ import annotations

import grp
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from modelswap.config import parse_config

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
MINIMAL = "models:\n  - name: m\n    base_path: /srv/m\n"


def blocks(language: str) -> list[str]:
    return [m.group(2) for m in BLOCK.finditer(README.read_text()) if m.group(1) == language]


def test_readme_is_for_users() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 400
    assert max(len(line) for line in text.splitlines() if not line.startswith("|")) <= 100
    for block in blocks("sh"):  # the two set-up commands stay true
        if "pip install -e" in block:
            assert block.strip() in (
                "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/modelswap demo",
                "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/pytest")
    for link in re.findall(r"\]\(([^)#:]+)\)", BLOCK.sub("", text)):
        assert (ROOT / link).exists(), link
    layout = next(b for b in blocks("") if b.startswith("daemon/modelswap/"))
    package = ROOT / "daemon" / "modelswap"
    on_disk = {p.name + ("/" if p.is_dir() else "") for p in package.iterdir()
               if not p.name.startswith(("_", ".")) and p.name != "py.typed"}
    for name in on_disk | {"__init__.py"}:  # the README's layout names every module
        assert re.search(rf"(^|\s){re.escape(name)}(\s|$)", layout, re.M), name


@pytest.mark.parametrize("code", blocks("python"), ids=lambda c: c.splitlines()[0][:40])
def test_python_snippet_runs(code: str) -> None:
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]


def test_snippets_print_what_their_comments_say() -> None:
    first, api = blocks("python")[0], blocks("python")[1]
    out = subprocess.run([sys.executable, "-c", first], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, check=True).stdout
    assert out == "v1: 2.5\n"
    out = subprocess.run([sys.executable, "-c", api], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, check=True).stdout
    assert "half_plus_two: version 9 is not available (available: [1])" in out
    assert "True 1/1 models available; half_plus_two v1" in out
    tf1 = next(b for b in blocks("python") if ".prune(" in b)
    out = subprocess.run([sys.executable, "-c", tf1], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, check=True).stdout
    assert "[[3.]]" in out


@pytest.mark.parametrize("text", blocks("yaml"), ids=lambda c: c.splitlines()[0][:40])
def test_yaml_snippet_is_a_valid_config(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real = grp.getgrnam

    def getgrnam(name: str) -> grp.struct_group:  # the worked example's groupadd
        if name == "models":
            return grp.struct_group(("models", "x", 990, []))
        return real(name)

    monkeypatch.setattr(grp, "getgrnam", getgrnam)
    config = parse_config(text if "models:" in text else MINIMAL + text)
    if "group:models" in text:
        assert config.models[0].trust is not None
        assert config.models[0].trust.gids == {990}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
@pytest.mark.parametrize("text", blocks("ini"), ids=lambda c: c.splitlines()[0][:40])
def test_ini_snippet_is_a_valid_drop_in(text: str, tmp_path: Path) -> None:
    unit = (ROOT / "systemd" / "modelswap.service").read_text()
    (tmp_path / "modelswap.service").write_text(
        unit.replace("/opt/modelswap/bin/modelswap", str(Path(sys.executable).parent
                                                         / "modelswap")))
    (tmp_path / "modelswap.service.d").mkdir()
    (tmp_path / "modelswap.service.d" / "example.conf").write_text(text)
    done = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "modelswap.service")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "modelswap" not in done.stderr, done.stderr
