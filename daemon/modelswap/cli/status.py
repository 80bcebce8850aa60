"""`modelswap status`: ask a running daemon's status server, render a table."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from typing import Any


def fetch_models(url: str, timeout: float = 5.0) -> dict[str, Any]:
    """GET `url`/v1/models. Raises OSError when the daemon cannot be reached, ValueError
    when the answer is not modelswap's."""
    if "://" not in url:
        url = "http://" + url
    target = url.rstrip("/") + "/v1/models"
    try:
        with urllib.request.urlopen(target, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        raise ValueError(f"HTTP {exc.code} {exc.reason} for {target}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        raise OSError(getattr(reason, "strerror", None) or str(reason)) from None
    except http.client.HTTPException as exc:  # not an HTTP server on that port
        raise ValueError(f"{type(exc).__name__}: {exc}") from None
    try:
        report = json.loads(body)
    except ValueError:
        raise ValueError(f"{target} did not answer JSON") from None
    if not isinstance(report, dict) or not isinstance(report.get("models"), list):
        raise ValueError(f"{target} did not answer a modelswap model list")
    return report


def age(seconds: float) -> str:
    """12s, 3m05s, 2h07m, 4d03h."""
    s = int(max(seconds, 0))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def render_status(report: dict[str, Any]) -> str:
    """A table of models, versions, states, ages and last errors, and a summary line."""
    rows = [("MODEL", "VERSION", "STATE", "AGE", "DETAIL")]
    serving = 0
    for model in report["models"]:
        name = str(model.get("name"))
        served = model.get("served_version")
        serving += served is not None
        versions = model.get("versions") or []
        if not versions:
            rows.append((name, "-", "-", "-", f"no version under {model.get('base_path')}"))
        for v in versions:
            detail = []
            if v.get("version") == served:
                detail.append("serving")
            if v.get("labels"):
                detail.append("labels: " + ",".join(v["labels"]))
            if v.get("active_handles"):
                detail.append(f"handles: {v['active_handles']}")
            if v.get("error_type") or v.get("error"):
                detail.append(f"{v.get('error_type') or 'error'}: {v.get('error') or ''}".strip())
            rows.append((name, str(v.get("version")), str(v.get("state")),
                         age(float(v.get("age_s") or 0)), "; ".join(detail)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(row[i].ljust(widths[i]) for i in range(4)) + "  " + row[4]
             for row in rows]
    for model in report["models"]:
        remote = model.get("remote")
        if remote:
            lines.append(_remote_line(str(model.get("name")), remote))
    total = len(report["models"])
    ready = report.get("ready")
    lines.append(f"{serving}/{total} models serving"
                 + ("" if ready is None else f"; ready: {'yes' if ready else 'no'}"))
    return "\n".join(line.rstrip() for line in lines)


def _remote_line(name: str, remote: dict[str, Any]) -> str:
    """One line per remote model: its store, reachable or not, downloads, requests."""
    state = {True: "reachable", False: "UNREACHABLE", None: "not listed yet"}[
        remote.get("reachable")]
    parts = [f"{name}: {remote.get('url')} {state}"]
    if remote.get("error"):
        parts.append(f"({remote.get('error_kind')}: {remote['error']})")
    for d in remote.get("downloading") or ():
        parts.append(f"downloading v{d['version']} {d['bytes_done']}/{d['bytes_total']} B")
    requests = remote.get("requests") or {}
    parts.append("requests " + ", ".join(f"{k} {v}" for k, v in sorted(requests.items())))
    return "  ".join(parts)
