"""The completeness gate's checks, in order (like structlog's processors).

Each check looks at one version folder and returns None (pass), `Wait(reason, when to
look again)` or `Fail(error type, reason)`; the first that does not pass decides the
verdict. A missed case is one more function in `CHECKS`. "Quiet" is judged on the daemon's
own monotonic clock (`Folder.quiet`), never by comparing our time with a file server's.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from google.protobuf import message, text_format

from modelswap.config.schema import TrustConfig
from modelswap.errors import LoadError, TagMismatch, Untrusted
from modelswap.gate.bundle import bad_checksums, missing_bytes
from modelswap.gate.savedmodel import PB, PBTXT, asset_files, needs_variables, parse_saved_model
from modelswap.gate.trust import untrusted

# a file that does not parse, or whose checksums do not match, is an error only once it
# stayed unchanged this long (a writer pausing longer than `settle` is not an error)
GRACE_FACTOR, GRACE_MIN = 10.0, 5.0


class Wait(NamedTuple):
    reason: str
    recheck_at: float | None = None  # monotonic; None: on the next event


class Fail(NamedTuple):
    error: type[LoadError]
    reason: str


Quiet = Callable[[Path, os.stat_result, float], "float | None"]


@dataclass
class Folder:
    """One version folder as the checks see it; checks fill in what they learn."""

    path: Path
    tags: frozenset[str]
    marker: str | None
    trust_base: Path | None
    trust: TrustConfig | None
    atomic: bool  # the folder or its saved_model.pb arrived by a rename
    verify: str  # auto | checksums | sizes
    settle: float
    quiet: Quiet  # None when unchanged for that many seconds on our clock, else when to look
    meta_graph: Any = None
    tag_sets: tuple[frozenset[str], ...] = ()

    @property
    def grace(self) -> float:
        return max(self.settle * GRACE_FACTOR, GRACE_MIN)


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:
        return None


def _tree(path: Path) -> Iterator[Path]:
    """Every entry under `path` (symlinks followed by stat, not walked)."""
    try:
        with os.scandir(path) as entries:
            found = sorted(entries, key=lambda e: e.name)
    except OSError:
        return
    for entry in found:
        yield Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            yield from _tree(Path(entry.path))


def trusted(f: Folder) -> Wait | Fail | None:
    reason = untrusted(f.trust_base, f.path, f.trust) if f.trust_base is not None else None
    return Fail(Untrusted, reason) if reason else None


def regular_files(f: Folder) -> Wait | Fail | None:
    """What TensorFlow reads must be files: a FIFO would block a load holding the GIL."""
    for path in (f.path / PB, f.path / PBTXT, f.path / "fingerprint.pb",
                 *_tree(f.path / "variables"), *_tree(f.path / "assets")):
        st = _stat(path)
        if st is not None and not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            return Fail(LoadError, f"{path.relative_to(f.path)} is not a regular file")
    return None


def saved_model(f: Folder) -> Wait | Fail | None:
    """saved_model.pb is there, whole (renamed in, or quiet for `settle`) and parses."""
    pb = f.path / PB
    st = _stat(pb)
    if st is None:
        pb = f.path / PBTXT
        st = _stat(pb)
    if st is None:
        return Wait("saved_model.pb not there yet")
    if not f.atomic:
        at = f.quiet(pb, st, f.settle)
        if at is not None:
            return Wait(f"{pb.name} written in place; settling", at)
    try:
        proto = parse_saved_model(pb)
        problem = None if proto.meta_graphs else "holds no MetaGraph (empty or truncated file)"
    except (message.DecodeError, text_format.ParseError, UnicodeDecodeError) as exc:
        problem = f"does not parse: {exc}"
    except OSError as exc:
        return Wait(f"{pb.name} unreadable: {exc.strerror}")
    if problem is not None:
        at = None if f.atomic else f.quiet(pb, st, f.grace)
        if at is not None:  # still being written, with pauses: not an error yet
            return Wait(f"{pb.name} {problem}; waiting for the writer", at)
        return Fail(LoadError, f"{pb.name} {problem}")
    f.tag_sets = tuple(frozenset(mg.meta_info_def.tags) for mg in proto.meta_graphs)
    f.meta_graph = next((mg for mg, ts in zip(proto.meta_graphs, f.tag_sets, strict=True)
                         if ts == f.tags), None)
    return None


def tags(f: Folder) -> Wait | Fail | None:
    if f.meta_graph is None:
        have = ", ".join(str(sorted(ts)) for ts in f.tag_sets)
        return Fail(TagMismatch, f"no MetaGraph has tags {sorted(f.tags)}; the model has {have}")
    return None


def assets(f: Folder) -> Wait | Fail | None:
    """Every asset the MetaGraph names exists and is quiet: a vocabulary cut short loads
    fine and gives wrong answers, with no error anywhere."""
    for name in asset_files(f.meta_graph):
        path = f.path / "assets" / name
        st = _stat(path)
        if st is None:
            return Wait(f"assets/{name} missing")
        at = None if f.atomic else f.quiet(path, st, f.settle)
        if at is not None:
            return Wait(f"assets/{name} written in place; settling", at)
    return None


def variables(f: Folder) -> Wait | Fail | None:
    """The index parses and every shard holds the bytes its entries need."""
    folder = f.path / "variables"
    if _stat(folder / "variables.index") is None and not needs_variables(f.meta_graph):
        return None
    reason = missing_bytes(folder)
    return Wait(reason) if reason is not None else None


def checksums(f: Folder) -> Wait | Fail | None:
    """Each tensor's bytes match the crc32c in the index (copies in place, or always with
    `verify: checksums`): a shard allocated at full size and then filled has the right size
    long before it has the right content."""
    if f.verify == "sizes" or (f.verify == "auto" and f.atomic):
        return None
    folder = f.path / "variables"
    if _stat(folder / "variables.index") is None:
        return None
    reason = bad_checksums(folder)
    if reason is None:
        return None
    shards = [(p, st) for p in _tree(folder) if (st := _stat(p)) is not None]
    waits = [at for p, st in shards if (at := f.quiet(p, st, f.grace)) is not None]
    if waits:
        return Wait(reason, min(waits))
    return Fail(LoadError, reason.replace("do not match their checksum yet (still being "
                                          "written?)", "do not match their checksum: damaged"))


def marker(f: Folder) -> Wait | Fail | None:
    if f.marker and _stat(f.path / f.marker) is None:
        return Wait(f"marker {f.marker} missing")
    return None


Check = Callable[[Folder], "Wait | Fail | None"]
CHECKS: tuple[tuple[str, Check], ...] = (
    ("trust", trusted),
    ("regular files", regular_files),
    ("saved_model.pb", saved_model),
    ("tags", tags),
    ("assets", assets),
    ("variables", variables),
    ("checksums", checksums),
    ("marker", marker),
)
