"""The HTTP endpoints on the metrics port: /metrics (Prometheus), /healthz (alive), /readyz (ready to score).

API:
    server = HealthServer(registry, host="127.0.0.1", port=0, ready=lambda: (True, "ok"))
    server.start(); server.port; server.stop(timeout_s)

GET only (anything else: 405); unknown paths: 404. Binds loopback by default (prometheus-client's own
start_http_server binds every interface). /readyz answers 503 with the reason while not ready.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

ReadyCheck = Callable[[], tuple[bool, str]]


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

    def __init__(self, address: tuple[str, int], registry: CollectorRegistry, ready: ReadyCheck) -> None:
        self.registry = registry
        self.ready = ready
        super().__init__(address, _Handler)


class HealthServer:
    """Serves the three endpoints from one named thread."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int, ready: ReadyCheck) -> None:
        self._server = _Server((host, port), registry, ready)
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        port: int = self._server.server_address[1]
        return port

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Shut down and join; returns whether the thread ended in time."""
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout_s)
        return not self._thread.is_alive()
