"""`modelswap inspect`: what a SavedModel holds and whether it is complete, without loading it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelswap.config import Config, ModelConfig, TrustConfig
from modelswap.gate.judge import Gate
from modelswap.gate.listing import list_versions, parse_version
from modelswap.gate.savedmodel import PB, PBTXT, parse_saved_model
from modelswap.load.contract import tensor_meta


def _tensors(infos: Any) -> dict[str, dict[str, Any]]:
    described = {}
    for name, info in sorted(infos.items()):
        meta = tensor_meta(info)
        shape = None if meta.shape is None else [None if d < 0 else d for d in meta.shape]
        described[name] = {"dtype": meta.dtype, "shape": shape, "tensor": info.name}
    return described


def _fingerprint(path: Path) -> dict[str, Any] | None:
    fingerprint = path / "fingerprint.pb"
    if not fingerprint.exists():
        return None
    from tensorflow.core.protobuf import fingerprint_pb2

    fp = fingerprint_pb2.FingerprintDef()
    try:
        fp.ParseFromString(fingerprint.read_bytes())
    except Exception as exc:
        return {"error": str(exc)}
    return {"saved_model_checksum": fp.saved_model_checksum,
            "graph_def_program_hash": fp.graph_def_program_hash,
            "checkpoint_hash": fp.checkpoint_hash}


_DEFAULT_TRUST = TrustConfig()


def inspect_version(path: Path, tags: frozenset[str] = frozenset({"serve"}),
                    marker: str | None = None, trust: TrustConfig | None = _DEFAULT_TRUST,
                    base: Path | None = None) -> dict[str, Any]:
    """Tag sets, signatures, fingerprint and the gate's verdict (trust included, under
    `base`, default the parent folder) of one version folder."""
    report: dict[str, Any] = {"path": str(path), "meta_graphs": []}
    pb = path / PB if (path / PB).exists() else path / PBTXT
    proto: Any = None
    if pb.exists():
        try:
            proto = parse_saved_model(pb)
        except Exception as exc:
            report["error"] = f"{pb.name}: {type(exc).__name__}: {exc}"
    for mg in proto.meta_graphs if proto is not None else ():
        report["meta_graphs"].append({
            "tags": sorted(mg.meta_info_def.tags),
            "signatures": {name: {"method": sig.method_name, "inputs": _tensors(sig.inputs),
                                  "outputs": _tensors(sig.outputs)}
                           for name, sig in sorted(mg.signature_def.items())
                           if not name.startswith("__")},
        })
    report["fingerprint"] = _fingerprint(path)
    trust_base = (base or path.parent) if trust is not None else None
    verdict = Gate(settle=0.0).check(path, tags, marker, trust_base, trust)
    report["checked_tags"] = sorted(tags)
    report["complete"] = verdict.ready
    report["reason"] = verdict.reason
    report["check"] = verdict.check  # the gate check that holds it back
    report["error_type"] = verdict.error.__name__ if verdict.error else None
    return report


def inspect_path(path: Path, tags: str | None = None,
                 model: ModelConfig | None = None) -> dict[str, Any]:
    """Inspect a version folder, or every version folder of a base path, with the settings
    of `model` (tags, marker, trust) or the defaults."""
    wanted = frozenset(t for t in (tags or "").split(",") if t) or (
        model.tag_set if model is not None else frozenset({"serve"}))
    marker = model.marker if model is not None else None
    trust = model.trust if model is not None else TrustConfig()
    base = model.base_path if model is not None else None
    if _is_version_folder(path):
        return {"path": str(path),
                "versions": [inspect_version(path, wanted, marker, trust, base)]}
    versions, warnings = list_versions(path)
    return {"path": str(path), "warnings": warnings,
            "versions": [inspect_version(versions[n], wanted, marker, trust, path)
                         | {"version": n} for n in sorted(versions, reverse=True)]}


def _is_version_folder(path: Path) -> bool:
    """A SavedModel folder, or one on its way to be (a number, or SavedModel parts in it):
    an empty or half-copied version folder is reported as not complete."""
    return (parse_version(path.name) is not None
            or any((path / name).exists() for name in (PB, PBTXT, "variables", "assets")))


def _shown(url: str | None) -> str | None:
    if url is None:
        return None
    from modelswap.config.remote import validate_url

    validate_url(url)  # a URL that passed the config holds no password or query
    return url


def model_settings(model: ModelConfig) -> dict[str, Any]:
    """What the config says about loading one model (shown by `inspect --config`)."""
    return {"name": model.name, "base_path": str(model.base_path),
            "source_url": _shown(model.source_url),
            "tags": list(model.tags), "marker": model.marker,
            "trust": None if model.trust is None else model.trust.model_dump(mode="json"),
            "load_options": model.load_options.model_dump(mode="json")}


def inspect_config(config: Config, path: Path | None = None,
                   tags: str | None = None) -> list[dict[str, Any]]:
    """Each configured model (or the one whose base path holds `path`) with its settings."""
    reports = []
    for model in config.models:
        if path is not None and not path.absolute().is_relative_to(model.base_path):
            continue
        if model.source_url is not None and path is None:  # the store, then the cache
            from modelswap.watch.remote import RemoteError, redact
            from modelswap.watch.remote.inspection import inspect_url

            wanted = [t for t in (tags or "").split(",") if t] or list(model.tags)
            try:
                remote = inspect_url(model.source_url, wanted)
            except RemoteError as exc:
                error = f"{exc.kind}: {exc}"
                remote = {"path": redact(model.source_url), "versions": [], "error": error,
                          "warnings": [f"the store cannot be listed: {error}"]}
            reports.append(remote | {"model": model_settings(model)})
            if not model.base_path.is_dir():
                continue
        report = inspect_path(path if path is not None else model.base_path, tags, model)
        reports.append(report | {"model": model_settings(model)})
    return reports


def render(report: dict[str, Any]) -> str:
    """Human-readable text of `inspect_path`'s report."""
    lines = [f"{report['path']}"]
    settings = report.get("model")
    if settings:
        lines.append(f"  model {settings['name']}: tags {settings['tags']}, "
                     f"marker {settings['marker']}, trust {settings['trust']}")
        lines.append(f"  load_options: {settings['load_options']}")
        if settings.get("source_url"):
            lines.append(f"  remote {settings['source_url']}, mirrored into "
                         f"{settings['base_path']}")
    lines += [f"  warning: {w}" for w in report.get("warnings", ())]
    if not report["versions"]:
        lines.append("  no version folders")
    for v in report["versions"]:
        head = f"version {v['version']}" if "version" in v else "SavedModel"
        verdict = ("complete" if v["complete"]
                   else f"not complete: {v.get('check')}: {v['reason']} ({v['error_type']})")
        lines.append(f"  {head}: {verdict} [tags {v['checked_tags']}]")
        if "proof" in v:
            lines.append(f"    {v['proof']} proof: {v['files']} files, {v['bytes']} bytes")
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
