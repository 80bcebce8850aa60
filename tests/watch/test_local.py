"""The local watcher's pure parts: which paths are hints."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelswap.watch.local import _staging

BASE = Path("/models/m")


@pytest.mark.parametrize(("path", "staging"), [
    (BASE / ".incoming-3" / "variables" / "variables.index", True),
    (BASE / ".staging", True),
    (BASE / "3" / "saved_model.pb", False),
    (BASE / "3" / ".hidden", False),  # inside a version: the gate's business
    (BASE, False),
    (Path("/models/other/.incoming-1/x"), False),
])
def test_staging_paths_are_no_hints(path: Path, staging: bool) -> None:
    assert _staging(BASE, path) is staging
