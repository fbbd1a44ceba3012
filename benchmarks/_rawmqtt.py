"""A minimal MQTT 3.1.1 publisher for load generation: CONNECT, PUBLISH at QoS 0 or 1, PUBACK, DISCONNECT.

    pub = RawPublisher("127.0.0.1", port, qos=1, inflight=1000, client_id="pw-bench-pub-1")
    pub.publish_many([(b"plant/u0000/readings", payload), ...])   # one send; waits while `inflight` are unacked
    pub.drain(timeout_s)                                           # every QoS 1 message acknowledged
    pub.close()

Why not paho: its Python client spends about 250 us of CPU per QoS 1 message on this kind of machine (the
publishing thread and its network thread trade the GIL for every acknowledgement, and its in-flight bookkeeping
grows with the window), more than the service spends taking one in, so a benchmark publisher built on it measures
itself. Here a packet is one bytes concatenation, a group of packets goes out in one ``sendall``, and PUBACKs are
read in bulk from the same thread. Only what a publisher needs: no subscriptions, no QoS 2, no reconnect (a
broken connection raises), keep-alive off (the broker never times this client out).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence

_PUBACK = 0x40
_CONNACK = 0x20


def remaining_length(n: int) -> bytes:
    """MQTT's variable-length encoding of a packet's remaining length (1 to 4 bytes)."""
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


class RawPublisher:
    """One MQTT 3.1.1 connection that publishes; at most ``inflight`` QoS 1 messages unacknowledged."""

    def __init__(self, host: str, port: int, qos: int, inflight: int, client_id: str, timeout_s: float = 30.0) -> None:
        if qos not in (0, 1):
            raise ValueError(f"qos must be 0 or 1, got {qos}")
        self.qos = qos
        self.inflight = max(1, inflight)
        self.timeout_s = timeout_s
        self._pending: set[int] = set()
        self._next_id = 0
        self._inbox = bytearray()
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # protocol "MQTT" level 4 (3.1.1), flags: clean session, keep-alive 0 (off)
        body = _string(b"MQTT") + bytes([4, 0x02]) + (0).to_bytes(2, "big") + _string(client_id.encode())
        self.sock.sendall(bytes([0x10]) + remaining_length(len(body)) + body)
        packet_type, payload = self._read_packet()
        if packet_type != _CONNACK or len(payload) != 2 or payload[1] != 0:
            raise ConnectionError(f"broker refused the connection: type {packet_type:#x}, payload {payload.hex()}")

    @property
    def pending(self) -> int:
        return len(self._pending)

    def publish_many(self, messages: Sequence[tuple[bytes, bytes]]) -> None:
        """Send ``(topic, payload)`` messages in order, in as few ``sendall`` calls as the in-flight window allows."""
        i = 0
        while i < len(messages):
            if self.qos == 1:
                room = self.inflight - len(self._pending)
                if room <= 0:
                    self._read_acks(block=True)
                    continue
                chunk = messages[i : i + room]
            else:
                chunk = messages[i:]
            self.sock.sendall(b"".join(self._packet(topic, payload) for topic, payload in chunk))
            i += len(chunk)
            if self.qos == 1:
                self._read_acks(block=False)  # keep the broker's acks from piling up in the socket buffer

    def publish(self, topic: bytes, payload: bytes) -> None:
        self.publish_many(((topic, payload),))

    def drain(self, timeout_s: float = 60.0) -> None:
        """Wait until every QoS 1 message is acknowledged (raises TimeoutError past ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while self._pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self._pending)} messages unacknowledged after {timeout_s} s")
            self._read_acks(block=True)

    def close(self) -> None:
        try:
            self.sock.sendall(bytes([0xE0, 0x00]))  # DISCONNECT: the broker drops no will, logs a clean close
        finally:
            self.sock.close()

    # -- internals ------------------------------------------------------------------------------------------
    def _packet(self, topic: bytes, payload: bytes) -> bytes:
        if self.qos == 0:
            return b"\x30" + remaining_length(2 + len(topic) + len(payload)) + _string(topic) + payload
        self._next_id = self._next_id % 65535 + 1  # packet ids 1..65535; the window is far smaller
        self._pending.add(self._next_id)
        ident = self._next_id.to_bytes(2, "big")
        return b"\x32" + remaining_length(4 + len(topic) + len(payload)) + _string(topic) + ident + payload

    def _receive(self, block: bool) -> bool:
        """Append what the socket holds to the inbox; False when nothing was there (non-blocking)."""
        self.sock.settimeout(self.timeout_s if block else 0.0)
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return False
        except TimeoutError as exc:
            raise TimeoutError(f"no packet from the broker in {self.timeout_s} s") from exc
        if not data:
            raise ConnectionError("the broker closed the connection")
        self._inbox += data
        return True

    def _take_packet(self) -> tuple[int, bytes] | None:
        """One whole packet from the inbox, or None while it is incomplete."""
        if len(self._inbox) < 2:
            return None
        length, multiplier, pos = 0, 1, 1
        while True:
            if pos >= len(self._inbox):
                return None
            byte = self._inbox[pos]
            length += (byte & 0x7F) * multiplier
            multiplier *= 128
            pos += 1
            if not byte & 0x80:
                break
        if len(self._inbox) < pos + length:
            return None
        packet_type, payload = self._inbox[0] & 0xF0, bytes(self._inbox[pos : pos + length])
        del self._inbox[: pos + length]
        return packet_type, payload

    def _read_packet(self) -> tuple[int, bytes]:
        while (packet := self._take_packet()) is None:
            self._receive(block=True)
        return packet

    def _read_acks(self, block: bool) -> None:
        got = self._receive(block)
        while got:
            while (packet := self._take_packet()) is not None:
                packet_type, payload = packet
                if packet_type == _PUBACK and len(payload) >= 2:
                    self._pending.discard(int.from_bytes(payload[:2], "big"))
            got = self._receive(block=False)
