"""`modelswap inspect`: what a SavedModel holds and whether it is complete, without loading it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelswap.gate.checks import PB, PBTXT, Gate, _parse_saved_model
from modelswap.gate.listing import list_versions
from modelswap.load.contract import tensor_meta


def _tensors(infos: Any) -> dict[str, dict[str, Any]]:
    described = {}
    for name, info in sorted(infos.items()):
        meta = tensor_meta(info)
        shape = None if meta.shape is None else [None if d < 0 else d for d in meta.shape]
        described[name] = {"dtype": meta.dtype, "shape": shape, "tensor": info.name}
    return described


def inspect_version(path: Path, tags: str | None = None) -> dict[str, Any]:
    """Tag sets, signatures, fingerprint and the completeness verdict of one version folder."""
    report: dict[str, Any] = {"path": str(path), "meta_graphs": [], "fingerprint": None}
    pb = path / PB if (path / PB).exists() else path / PBTXT
    try:
        proto: Any = _parse_saved_model(pb)
    except Exception as exc:
        proto = None
        report["error"] = f"{pb.name}: {type(exc).__name__}: {exc}"
    for mg in proto.meta_graphs if proto is not None else ():
        report["meta_graphs"].append({
            "tags": sorted(mg.meta_info_def.tags),
            "signatures": {name: {"method": sig.method_name, "inputs": _tensors(sig.inputs),
                                  "outputs": _tensors(sig.outputs)}
                           for name, sig in sorted(mg.signature_def.items())
                           if not name.startswith("__")},
        })
    fingerprint = path / "fingerprint.pb"
    if fingerprint.exists():
        from tensorflow.core.protobuf import fingerprint_pb2

        fp = fingerprint_pb2.FingerprintDef()
        try:
            fp.ParseFromString(fingerprint.read_bytes())
            report["fingerprint"] = {"saved_model_checksum": fp.saved_model_checksum,
                                     "graph_def_program_hash": fp.graph_def_program_hash,
                                     "checkpoint_hash": fp.checkpoint_hash}
        except Exception as exc:
            report["fingerprint"] = {"error": str(exc)}
    wanted = frozenset(t for t in (tags or "serve").split(",") if t)
    verdict = Gate(settle=0.0).check(path, wanted, None)
    report["checked_tags"] = sorted(wanted)
    report["complete"] = verdict.ready
    report["reason"] = verdict.reason
    report["error_type"] = verdict.error.__name__ if verdict.error else None
    return report


def inspect_path(path: Path, tags: str | None = None) -> dict[str, Any]:
    """Inspect a version folder, or every version folder of a base path."""
    if (path / PB).exists() or (path / PBTXT).exists():
        return {"path": str(path), "versions": [inspect_version(path, tags)]}
    versions, warnings = list_versions(path)
    return {"path": str(path), "warnings": warnings,
            "versions": [inspect_version(versions[n], tags) | {"version": n}
                         for n in sorted(versions, reverse=True)]}


def render(report: dict[str, Any]) -> str:
    """Human-readable text of `inspect_path`'s report."""
    lines = [f"{report['path']}"]
    lines += [f"  warning: {w}" for w in report.get("warnings", ())]
    if not report["versions"]:
        lines.append("  no version folders")
    for v in report["versions"]:
        head = f"version {v['version']}" if "version" in v else "SavedModel"
        verdict = ("complete" if v["complete"]
                   else f"NOT complete ({v['error_type']}: {v['reason']})")
        lines.append(f"  {head}: {verdict} [tags {v['checked_tags']}]")
        if v.get("error"):
            lines.append(f"    error: {v['error']}")
        for mg in v["meta_graphs"]:
            lines.append(f"    MetaGraph tags={mg['tags']}")
            for name, sig in mg["signatures"].items():
                lines.append(f"      signature {name} ({sig['method']})")
                for kind in ("inputs", "outputs"):
                    for tname, t in sig[kind].items():
                        lines.append(f"        {kind[:-1]:6} {tname}: {t['dtype']} {t['shape']}")
        if v["fingerprint"]:
            lines.append(f"    fingerprint: {v['fingerprint']}")
    return "\n".join(lines)
