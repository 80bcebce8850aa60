"""Trust checks: a SavedModel is code, so refuse folders other users could have written.

Like sshd's StrictModes: the base path, each version folder and its saved_model.pb
and variables/ must not be writable by group or others, and must be owned by root
or by the daemon's own user. A symlink is followed only if its target passes too.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def _problem(path: Path, allowed_owners: frozenset[int]) -> str | None:
    try:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            st = path.stat()  # the target must pass the same checks
    except OSError:
        return None  # missing things are the gate's business
    if st.st_uid not in allowed_owners:
        return f"{path} is owned by uid {st.st_uid}, not root or the daemon's user"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        who = "group and others" if st.st_mode & stat.S_IWOTH and st.st_mode & stat.S_IWGRP \
            else "others" if st.st_mode & stat.S_IWOTH else "group"
        return f"{path} is writable by {who} (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def untrusted(base: Path, version_dir: Path) -> str | None:
    """Why `version_dir` under `base` must not be loaded, or None if it may."""
    owners = frozenset({0, os.geteuid()})
    for path in (base, version_dir, version_dir / "saved_model.pb",
                 version_dir / "saved_model.pbtxt", version_dir / "variables"):
        reason = _problem(path, owners)
        if reason is not None:
            return reason
    return None
