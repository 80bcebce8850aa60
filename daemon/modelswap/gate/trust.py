"""Trust checks: a SavedModel is code, so refuse folders other users could have written.

Like sshd's StrictModes: the base path, each version folder and its saved_model.pb and
variables/ must be owned by root, the daemon's user, a user in `trust.owners` or a group
in `trust.owners` (`group:<name>`); none may be writable by others, and group-writable
only for a group in `trust.group_writable_by`. A symlink is followed only if its target
passes too.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from modelswap.config.schema import TrustConfig

_DEFAULT = TrustConfig()


def _problem(path: Path, policy: TrustConfig) -> str | None:
    try:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            st = path.stat()  # the target must pass the same checks
    except OSError:
        return None  # missing things are the gate's business
    owners = policy.uids | {0, os.geteuid()}
    if st.st_uid not in owners and st.st_gid not in policy.gids:
        return (f"{path} is owned by uid {st.st_uid} (gid {st.st_gid}): not root, the "
                f"daemon's user or one of trust.owners")
    mode = stat.S_IMODE(st.st_mode)
    if st.st_mode & stat.S_IWOTH:
        who = "group and others" if st.st_mode & stat.S_IWGRP else "others"
        return f"{path} is writable by {who} (mode {mode:o})"
    if st.st_mode & stat.S_IWGRP and st.st_gid not in policy.group_writable_by:
        return (f"{path} is writable by group {st.st_gid} (mode {mode:o}), which is not in "
                f"trust.group_writable_by")
    return None


def untrusted(base: Path, version_dir: Path, policy: TrustConfig | None = None) -> str | None:
    """Why `version_dir` under `base` must not be loaded, or None if it may."""
    policy = policy or _DEFAULT
    for path in (base, version_dir, version_dir / "saved_model.pb",
                 version_dir / "saved_model.pbtxt", version_dir / "variables"):
        reason = _problem(path, policy)
        if reason is not None:
            return reason
    return None
