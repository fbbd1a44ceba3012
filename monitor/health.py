"""The HTTP endpoints on the metrics port: /metrics (Prometheus), /healthz (alive), /readyz (ready to score).

API:
    server = HealthServer(registry, host="127.0.0.1", port=0, ready=lambda: (True, "ok"))   # binds: OSError
    server.expose(other)                                    # /metrics from another registry (or merged view)
    server.start(); server.port; server.stop(timeout_s)     # stop() also closes a server never started
    cannot_listen(host, port, exc) -> "metrics.port: cannot listen on ...: Address already in use"
    listen_address_problem(host) -> str | None              # the address alone (port 0): for check-config

GET only (anything else: 405); unknown paths: 404. Binds loopback by default (prometheus-client's own
start_http_server binds every interface). /readyz answers 503 with the reason while not ready.
"""

from __future__ import annotations

import errno
import logging
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

ReadyCheck = Callable[[], tuple[bool, str]]
# What /metrics serves: a CollectorRegistry, or anything with its collect() (monitor.merged_metrics.MergedRegistry).
Exposed = CollectorRegistry | Any


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, generate_latest(self.server.registry), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            self._send(200, b"ok\n")
        elif path == "/readyz":
            ready, reason = self.server.ready()
            self._send(200 if ready else 503, (reason + "\n").encode())
        else:
            self._send(404, b"not found\n")

    def _refuse(self) -> None:
        self._send(405, b"method not allowed\n")

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse

    def do_HEAD(self) -> None:
        self._refuse()

    def _send(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("http: " + format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], registry: Exposed, ready: ReadyCheck) -> None:
        self.registry = registry
        self.ready = ready
        super().__init__(address, _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that hangs up before its reply is written (a 1 s health probe timing out while the service
        # starts) is routine: one DEBUG line, not socketserver's traceback on stderr.
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError):
            log.debug("http: client %s went away: %s", client_address, exc)
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class HealthServer:
    """Serves the three endpoints from one named thread."""

    def __init__(self, registry: Exposed, host: str, port: int, ready: ReadyCheck) -> None:
        self._server = _Server((host, port), registry, ready)
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        port: int = self._server.server_address[1]
        return port

    def expose(self, registry: Exposed) -> None:
        """Serve /metrics from ``registry`` from now on (process mode: the front's merged with the scorer's)."""
        self._server.registry = registry

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Shut down and join; returns whether the thread ended in time."""
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        if self._thread.ident is not None:  # never started: nothing to join
            self._thread.join(timeout_s)
        return not self._thread.is_alive()


def cannot_listen(host: str, port: int, exc: OSError) -> str:
    """One line saying why the metrics server cannot listen on ``host:port``, naming the config key at fault.

    A port in use or reserved (below 1024 without the capability) is the port's fault; anything else (a name
    that does not resolve, an address not on this host) is the host's.
    """
    key = "metrics.port" if exc.errno in (errno.EADDRINUSE, errno.EACCES) else "metrics.host"
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{key}: cannot listen on {host}:{port}: {reason}"


def listen_address_problem(host: str) -> str | None:
    """Whether the metrics server could listen on ``host`` at all, checked on port 0 (any free port).

    The configured port itself is not tried: the running service may hold it while a new config is checked,
    so only `run` finds a busy port (and refuses in one line, with the config-error exit code).
    """
    try:
        server = _Server((host, 0), CollectorRegistry(), lambda: (False, "checking the address"))
    except OSError as exc:  # socket.gaierror included
        return cannot_listen(host, 0, exc)
    server.server_close()
    return None
