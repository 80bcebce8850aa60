"""The opt-in status server: TF Serving's model status API, health, readiness, metrics.

`http.listen: 127.0.0.1:8501` turns it on; nothing listens by default. It runs the
standard library's `ThreadingHTTPServer` on its own daemon thread, one thread per
connection, and only reads published snapshots: it never waits on the coordinator,
and a slow client never delays another one.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, urlsplit

from modelswap.config import Config
from modelswap.events import State, VersionStatus
from modelswap.logger import get_logger
from modelswap.observe.metrics import Metrics

if TYPE_CHECKING:
    from modelswap.core.coordinator import Coordinator
    from modelswap.watch.local import Source

__all__ = ["ERROR_CODES", "TF_STATES", "StatusServer", "tf_model_status"]

log = get_logger("modelswap.http")


class Service(Protocol):
    """What the server reads from the `ModelSwap` it reports on."""

    config: Config

    def ready(self, require: str | None = None) -> bool: ...

    def healthy(self) -> bool: ...

    def status(self) -> Mapping[str, tuple[VersionStatus, ...]]: ...

    def remote_status(self) -> Mapping[str, Any]: ...

# Our states in TF Serving's ModelVersionStatus.State (get_model_status.proto). TF Serving
# reports a version that failed to load as END with an error status, and one it tracks but
# has not started loading as START.
TF_STATES: Mapping[State, str] = {
    State.WAITING: "START",
    State.LOADING: "LOADING",
    State.AVAILABLE: "AVAILABLE",
    State.UNLOADING: "UNLOADING",
    State.END: "END",
    State.ERROR: "END",
}
# error_type → tensorflow.error.Code name, for a version in ERROR (else "OK")
ERROR_CODES: Mapping[str, str] = {
    "TagMismatch": "NOT_FOUND",  # what TF Serving itself answers for a tag mismatch
    "SignatureMismatch": "FAILED_PRECONDITION",
    "IncompleteModel": "FAILED_PRECONDITION",
    "RemoteError": "FAILED_PRECONDITION",  # the store's copy is bad (manifest, tags, pb)
    "Untrusted": "PERMISSION_DENIED",
    "InsufficientMemory": "RESOURCE_EXHAUSTED",
    "TransientLoadError": "UNAVAILABLE",
    "LoadTimeout": "DEADLINE_EXCEEDED",
    "TimeoutError": "DEADLINE_EXCEEDED",
    "WarmupFailed": "UNKNOWN",
    "LoadError": "UNKNOWN",
}
_MODEL = r"(?P<name>[A-Za-z0-9_.-]+)"
_ROUTES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"/v1/models/?"), "models"),
    (re.compile(rf"/v1/models/{_MODEL}/?"), "model"),
    (re.compile(rf"/v1/models/{_MODEL}/versions/(?P<version>[0-9]+)/?"), "version"),
    (re.compile(rf"/v1/models/{_MODEL}/labels/(?P<label>[^/]+)/?"), "label"),
    (re.compile(r"/healthz/?"), "healthz"),
    (re.compile(r"/readyz/?"), "readyz"),
    (re.compile(r"/metrics/?"), "metrics"),
)


class NotFound(LookupError):
    """404 with TF Serving's `{"error": message}` body."""


def tf_version_status(v: VersionStatus) -> dict[str, Any]:
    """One version in TF Serving's JSON shape (int64 version as a string, as protobuf's
    JSON mapping writes it)."""
    failed = v.state is State.ERROR
    return {"version": str(v.version), "state": TF_STATES[v.state],
            "status": {"error_code": ERROR_CODES.get(v.error_type or "", "UNKNOWN")
                       if failed else "OK",
                       "error_message": (v.error or v.error_type or "") if failed else ""}}


def tf_model_status(name: str, versions: Sequence[VersionStatus], *, version: int | None = None,
                    label: str | None = None,
                    labels: Mapping[str, int] | None = None) -> dict[str, Any]:
    """TF Serving's GetModelStatusResponse for `name` (all versions, one, or a label's).

    Raises `NotFound` with TF Serving's messages where it would answer 404.
    """
    if label is not None:
        if labels is None or label not in labels:
            raise NotFound(f"Unrecognized servable version label: {label} of model {name}")
        version = labels[label]
    if version is not None:
        found = [v for v in versions if v.version == version]
        if not found:
            raise NotFound(f"Could not find version {version} of model {name}")
        return {"model_version_status": [tf_version_status(found[0])]}
    if not versions:
        raise NotFound(f"Could not find any versions of model {name}")
    return {"model_version_status": [tf_version_status(v) for v in versions]}


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


class StatusServer:
    """Serves the routes of README's "Observability" section on `address` ((host, port);
    port 0 picks a free one: see `address` once started)."""

    def __init__(self, address: tuple[str, int], *, swap: Service, coordinator: Coordinator,
                 source: Source, metrics: Metrics) -> None:
        self._swap = swap
        self._coordinator = coordinator
        self._source = source
        self._metrics = metrics
        host, port = address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET

        class Server(ThreadingHTTPServer):
            address_family = family
            daemon_threads = True

        self._server = Server((host, port), _handler(self), bind_and_activate=False)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.2},
                                        name="modelswap-http", daemon=True)
        self._bound = False

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the server is bound to."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> StatusServer:
        """Bind and listen (raises OSError if the address is taken), then serve in the
        background."""
        try:
            self._server.server_bind()
            self._server.server_activate()
        except OSError:
            self._server.server_close()
            raise
        self._bound = True
        self._thread.start()
        host, port = self.address
        log.info("http_listening", host=host, port=port, url=f"http://{_netloc(host, port)}")
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (requests in flight finish on their threads)."""
        if self._bound:
            self._bound = False
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)

    # -- the answers (called on request threads; read-only) -------------------------------
    def models(self) -> dict[str, Any]:
        """GET /v1/models: every model with modelswap's own fields."""
        config = self._swap.config
        c = self._coordinator
        status, snapshot = self._swap.status(), c.snapshot  # with remote versions downloading
        remote = self._swap.remote_status()
        handles: dict[tuple[str, int], int] = {}
        for s in c.served_versions:
            handles[s.name, s.version] = handles.get((s.name, s.version), 0) + s.refs
        now = time.time()
        out = []
        for m in sorted(config.models, key=lambda m: m.name):
            view = snapshot.get(m.name)
            newest = view.newest if view is not None else None
            versions = [{
                "version": v.version, "state": v.state.value, "tf_state": TF_STATES[v.state],
                "path": str(v.path), "since": _iso(v.since), "age_s": round(now - v.since, 3),
                "error_type": v.error_type, "error": v.error, "retries": v.retries,
                "labels": list(v.labels), "active_handles": handles.get((m.name, v.version), 0),
            } for v in status.get(m.name, ())]
            out.append({"name": m.name, "base_path": str(m.base_path),
                        "served_version": newest.version if newest is not None else None,
                        "labels": dict(sorted(m.labels.items())), "versions": versions})
            if m.name in remote:
                from modelswap.watch.remote.report import remote_json

                out[-1]["remote"] = remote_json(remote[m.name])
        return {"models": out, "ready": self._swap.ready()}

    def model(self, name: str, version: int | None = None,
              label: str | None = None) -> dict[str, Any]:
        """GET /v1/models/{name}[/versions/{v}|/labels/{l}]: TF Serving's shape."""
        config = next((m for m in self._swap.config.models if m.name == name), None)
        if config is None:
            raise NotFound(f"Could not find any versions of model {name}")
        return tf_model_status(name, self._coordinator.status_snapshot.get(name, ()),
                               version=version, label=label, labels=config.labels)

    def health(self) -> tuple[bool, dict[str, Any]]:
        """`ModelSwap.healthy()`: the coordinator runs and looped in the last few seconds,
        and every observer thread runs."""
        c = self._coordinator
        ok = self._swap.healthy()
        return ok, {"status": "ok" if ok else "unhealthy",
                    "coordinator_alive": c.alive,
                    "heartbeat_age_s": round(max(time.monotonic() - c.heartbeat, 0.0), 3),
                    "observers_alive": self._source.alive()}

    def readyz(self) -> dict[str, Any]:
        """`ModelSwap.ready()`, and the models that hold it back (not looked at yet, or
        loading with no version available)."""
        config = self._swap.config
        status = self._coordinator.status_snapshot
        waiting = [m.name for m in sorted(config.models, key=lambda m: m.name)
                   if m.name not in status
                   or ({State.LOADING} <= {v.state for v in status[m.name]}
                       and not any(v.state is State.AVAILABLE for v in status[m.name]))]
        return {"ready": self._swap.ready(), "require": config.service.require,
                "waiting_for": waiting}

    def metrics(self, accept: str | None) -> tuple[bytes, str]:
        """The Prometheus exposition (OpenMetrics when the scraper asks for it)."""
        return self._metrics.exposition(accept)


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _handler(server: StatusServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "modelswap"
        protocol_version = "HTTP/1.1"
        timeout = 30  # a client that stops sending frees its thread after this

        def do_GET(self) -> None:
            self._answer(head=False)

        def do_HEAD(self) -> None:
            self._answer(head=True)

        def _answer(self, head: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            try:
                for pattern, route in _ROUTES:
                    match = pattern.fullmatch(path)
                    if match is not None:
                        self._route(route, match.groupdict(), head)
                        return
                self._json(HTTPStatus.NOT_FOUND, {"error": f"Malformed request: GET {path}"},
                           head)
            except NotFound as exc:
                self._json(HTTPStatus.NOT_FOUND, {"error": str(exc)}, head)
            except (BrokenPipeError, ConnectionResetError):
                pass
            except Exception as exc:
                log.exception("http_error", path=path)
                self._json(HTTPStatus.INTERNAL_SERVER_ERROR,
                           {"error": f"{type(exc).__name__}: {exc}"}, head)

        def _route(self, route: str, args: dict[str, str], head: bool) -> None:
            if route == "models":
                self._json(HTTPStatus.OK, server.models(), head)
            elif route in ("model", "version", "label"):
                version = int(args["version"]) if args.get("version") else None
                self._json(HTTPStatus.OK, server.model(args["name"], version, args.get("label")),
                           head)
            elif route == "healthz":
                ok, detail = server.health()
                self._json(HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE, detail, head)
            elif route == "readyz":
                detail = server.readyz()
                self._json(HTTPStatus.OK if detail["ready"] else HTTPStatus.SERVICE_UNAVAILABLE,
                           detail, head)
            else:
                body, content_type = server.metrics(self.headers.get("Accept"))
                self._send(HTTPStatus.OK, body, content_type, head)

        def _json(self, code: HTTPStatus, payload: object, head: bool) -> None:
            body = (json.dumps(payload, indent=2) + "\n").encode()
            self._send(code, body, "application/json", head)

        def _send(self, code: HTTPStatus, body: bytes, content_type: str, head: bool) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("http_request", client=self.client_address[0], request=format % args)

    return Handler
