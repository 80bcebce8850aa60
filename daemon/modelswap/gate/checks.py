"""The completeness gate: is a version folder whole, with the configured tags?"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import message, text_format

from modelswap.config.schema import TrustConfig
from modelswap.errors import IncompleteModel, LoadError, TagMismatch, Untrusted
from modelswap.gate.bundle import missing_bytes
from modelswap.gate.listing import parse_version
from modelswap.gate.trust import untrusted
from modelswap.load.contract import SignatureIO, signature_io

PB, PBTXT = "saved_model.pb", "saved_model.pbtxt"
_VARIABLE_OPS = frozenset({"VarHandleOp", "VariableV2", "Variable"})

Identity = tuple[int, int, int, int, int, int]  # dev, ino, size, mtime_ns, mode, uid


def _identity(st: os.stat_result) -> Identity:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode, st.st_uid)


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:
        return None


def files_signature(version_dir: Path, marker: str | None) -> tuple[object, ...]:
    """Cheap identity of a version's files (stat only), to cache gate verdicts on."""
    parts: list[object] = []
    for name in (PB, PBTXT, "fingerprint.pb", marker):
        if name:
            st = _stat(version_dir / name)
            parts.append(None if st is None else _identity(st))
    try:
        with os.scandir(version_dir / "variables") as entries:
            parts.extend(sorted((e.name, _identity(e.stat())) for e in entries))
    except OSError:
        parts.append("no-variables")
    return tuple(parts)


@dataclass(frozen=True)
class MetaInfo:
    """What the gate learnt from the chosen MetaGraph."""

    tag_sets: tuple[frozenset[str], ...]
    signatures: tuple[str, ...]
    # name → inputs/outputs (dtype, shape) of each SignatureDef, for contract checks
    signature_io: tuple[tuple[str, SignatureIO], ...] = ()


@dataclass(frozen=True)
class Verdict:
    """The gate's answer for one version folder.

    `ready`: load it. Otherwise `error` is set: an `IncompleteModel` means wait
    (re-check at `recheck_at` or on the next event); any other error type is final
    for these files.
    """

    ready: bool
    signature: tuple[object, ...]
    error: type[LoadError] | None = None
    reason: str | None = None
    recheck_at: float | None = None  # monotonic
    meta: MetaInfo | None = None

    @property
    def waiting(self) -> bool:
        return not self.ready and self.error is IncompleteModel


def _parse_saved_model(path: Path) -> object:
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    data = path.read_bytes()
    if path.name == PBTXT:
        text_format.Parse(data.decode("utf-8"), proto)
    else:
        proto.ParseFromString(data)
    return proto


def _needs_variables(meta_graph: object) -> bool:
    graph = meta_graph.object_graph_def  # type: ignore[attr-defined]
    if any(node.WhichOneof("kind") == "variable" for node in graph.nodes):
        return True
    if meta_graph.saver_def.filename_tensor_name:  # type: ignore[attr-defined]
        return True
    return any(node.op in _VARIABLE_OPS for node in meta_graph.graph_def.node)  # type: ignore[attr-defined]


@dataclass
class Gate:
    """The completeness gate (see DESIGN.md), with caches keyed by file identity.

    `saved_model.pb` counts as whole when it arrived by a rename (`note_renamed`),
    or its mtime is at least `settle` old, or it stayed unchanged for `settle`
    since first seen. Everything else is proven from content.
    """

    settle: float
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    _renamed: dict[Path, Identity] = field(default_factory=dict)
    _first_seen: dict[Path, tuple[Identity, float]] = field(default_factory=dict)
    _cache: dict[Path, tuple[tuple[object, ...], frozenset[str], Verdict]] = field(
        default_factory=dict
    )

    def note_renamed(self, dest: Path) -> None:
        """Record that `dest` (a saved_model.pb, a version folder or a base path) was renamed in."""
        candidates = [dest] if dest.name in (PB, PBTXT) else [dest / PB, dest / PBTXT]
        st = _stat(dest)  # (Path.is_dir raises on EACCES: this runs on the coordinator)
        if st is not None and stat.S_ISDIR(st.st_mode):
            try:
                with os.scandir(dest) as entries:
                    for entry in entries:
                        if parse_version(entry.name) is not None:
                            candidates += [Path(entry.path) / PB, Path(entry.path) / PBTXT]
            except OSError:
                pass
        for path in candidates:
            st = _stat(path)
            if st is not None and stat.S_ISREG(st.st_mode):
                self._renamed[path] = _identity(st)

    def forget(self, version_dir: Path) -> None:
        """Drop what is cached for a folder that is gone."""
        self._cache.pop(version_dir, None)
        for name in (PB, PBTXT):
            self._first_seen.pop(version_dir / name, None)
            self._renamed.pop(version_dir / name, None)

    def forget_except(self, keep: set[Path]) -> None:
        """Drop what is cached for every version folder not in `keep`."""
        known = {*self._cache, *(p.parent for p in self._first_seen),
                 *(p.parent for p in self._renamed)}
        for version_dir in known - keep:
            self.forget(version_dir)

    def check(self, version_dir: Path, tags: frozenset[str], marker: str | None,
              trust_base: Path | None = None, trust: TrustConfig | None = None) -> Verdict:
        """Apply the gate to one version folder (and the trust check under `trust_base`,
        with the rules of `trust`)."""
        signature = files_signature(version_dir, marker)
        if trust_base is not None:
            signature += (trust, *((st.st_mode, st.st_uid, st.st_gid) if st else None
                                   for st in (_stat(trust_base), _stat(version_dir))))
        cached = self._cache.get(version_dir)
        if cached is not None and cached[0] == signature and cached[1] == tags:
            return cached[2]
        reason = untrusted(trust_base, version_dir, trust) if trust_base is not None else None
        if reason is not None:
            verdict = Verdict(False, signature, Untrusted, reason)
        else:
            verdict = self._check(version_dir, tags, marker, signature)
        if verdict.recheck_at is None:
            self._cache[version_dir] = (signature, tags, verdict)
        return verdict

    def _whole(self, path: Path, st: os.stat_result) -> float | None:
        """None when whole, else the monotonic time to look again."""
        ident = _identity(st)
        if self._renamed.get(path) == ident:
            return None
        now = self.clock()
        age = self.wall_clock() - st.st_mtime_ns / 1e9
        if age >= self.settle:
            return None
        seen = self._first_seen.get(path)
        if seen is None or seen[0] != ident:
            self._first_seen[path] = seen = (ident, now)
        if now - seen[1] >= self.settle:
            return None
        return min(seen[1] + self.settle, now + max(self.settle - age, 0.0))

    def _check(
        self, version_dir: Path, tags: frozenset[str], marker: str | None,
        signature: tuple[object, ...],
    ) -> Verdict:
        def wait(reason: str, recheck_at: float | None = None) -> Verdict:
            return Verdict(False, signature, IncompleteModel, reason, recheck_at)

        pb = version_dir / PB
        st = _stat(pb)
        if st is None:
            pb = version_dir / PBTXT
            st = _stat(pb)
        if st is None:
            return wait("saved_model.pb not there yet")
        if not stat.S_ISREG(st.st_mode):
            return Verdict(False, signature, LoadError, f"{pb.name} is not a regular file")
        fingerprint = _stat(version_dir / "fingerprint.pb")
        if fingerprint is not None and not stat.S_ISREG(fingerprint.st_mode):
            # TensorFlow reads it holding the GIL: a FIFO there would freeze the process
            return Verdict(False, signature, LoadError, "fingerprint.pb is not a regular file")
        recheck_at = self._whole(pb, st)
        if recheck_at is not None:
            return wait(f"{pb.name} written in place; settling", recheck_at)
        try:
            proto = _parse_saved_model(pb)
        except (message.DecodeError, text_format.ParseError, UnicodeDecodeError) as exc:
            return Verdict(False, signature, LoadError, f"{pb.name} does not parse: {exc}")
        except OSError as exc:
            return wait(f"{pb.name} unreadable: {exc.strerror}")
        meta_graphs = list(proto.meta_graphs)  # type: ignore[attr-defined]
        if not meta_graphs:
            return Verdict(False, signature, LoadError,
                           f"{pb.name} holds no MetaGraph (empty or truncated file)")
        tag_sets = tuple(frozenset(mg.meta_info_def.tags) for mg in meta_graphs)
        pairs = zip(meta_graphs, tag_sets, strict=True)
        chosen = next((mg for mg, ts in pairs if ts == tags), None)
        if chosen is None:
            have = ", ".join(str(sorted(ts)) for ts in tag_sets)
            return Verdict(False, signature, TagMismatch,
                           f"no MetaGraph has tags {sorted(tags)}; the model has {have}")
        variables = version_dir / "variables"
        if _stat(variables / "variables.index") is not None or _needs_variables(chosen):
            reason = missing_bytes(variables)
            if reason is not None:
                return wait(reason)
        if marker and _stat(version_dir / marker) is None:
            return wait(f"marker {marker} missing")
        meta = MetaInfo(tag_sets, tuple(sorted(k for k in chosen.signature_def
                                               if not k.startswith("__"))),
                        signature_io(chosen))
        return Verdict(True, signature, meta=meta)
