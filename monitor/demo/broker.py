"""The demo's network bits: a free TCP port, and the embedded MQTT broker (amqtt, MQTT 3.1.1) in a thread.

API::

    port = port_or_free("127.0.0.1", 1883)           # 1883 when it can be bound, else any free port
    broker = EmbeddedBroker("127.0.0.1", port); broker.start(); ...; broker.stop() -> bool

amqtt is pure Python and speaks MQTT 3.1.1 only, so the service runs in its 3.1.1 mode in the demo. It allows
anonymous clients and binds loopback only: the demo's broker is private to this machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading

from monitor.demo.options import DEFAULT_BROKER_PORT, DemoError


def port_or_free(host: str, port: int) -> int:
    """``port`` when it can be bound on ``host``, else a free one chosen by the kernel."""
    for candidate in (port, 0) if port else (0,):
        with socket.socket() as s:
            try:
                s.bind((host, candidate))
            except OSError:
                continue
            chosen: int = s.getsockname()[1]
            return chosen
    raise DemoError(f"no free TCP port on {host}")


class EmbeddedBroker:
    """An amqtt broker (MQTT 3.1.1) on ``host:port``, served by an asyncio loop in a daemon thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_BROKER_PORT) -> None:
        self.host = host
        self.port = port
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="demo-broker", daemon=True)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 15.0) -> None:
        # amqtt logs every connection at INFO; the demo's own view says what matters.
        logging.getLogger("amqtt").setLevel(logging.WARNING)
        logging.getLogger("transitions").setLevel(logging.WARNING)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise DemoError(f"the embedded broker did not start on {self.address} within {timeout_s:.0f} s")
        if self._error is not None:
            raise DemoError(f"the embedded broker could not start on {self.address}: {self._error}")

    def _run(self) -> None:
        from amqtt.broker import Broker

        loop = asyncio.new_event_loop()
        self._loop = loop
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}", "max_connections": 64}},
            # Anonymous on loopback only: the demo's broker is private to this machine.
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }

        async def serve() -> None:
            self._stop = asyncio.Event()
            broker = Broker(config)
            try:
                await broker.start()
            except BaseException as exc:  # reported to start(), which raises DemoError
                self._error = exc
                self._ready.set()
                return
            self._ready.set()
            await self._stop.wait()
            await broker.shutdown()

        try:
            loop.run_until_complete(serve())
        finally:
            loop.close()

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Shut the broker down; True when its thread ended in time."""
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout_s)
        return not self._thread.is_alive()
