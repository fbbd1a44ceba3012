"""A private mosquitto on a free loopback port, with the controls fault tests need.

    broker = Broker(workdir).start()      # workdir None: a temporary one, removed by close()
    broker.host, broker.port, broker.address
    broker.stop() / broker.kill() / broker.start()   # SIGTERM (saves persistence) or SIGKILL; the same port again
    broker.pause() / broker.resume()      # SIGSTOP / SIGCONT: a half-open partition
    broker.log()                          # the broker's log file
    with Broker() as broker: ...          # started, stopped and its temporary directory removed on exit

Tests and benchmarks share this one launcher (tests/conftest.py wraps it in fixtures; tests/deploy/conftest.py
runs the shipped configuration through it). The demo's embedded broker (monitor/demo/broker.py, amqtt in a
thread) cannot stand in: it speaks MQTT 3.1.1 only and cannot be killed, paused or restarted with persistence.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tests.kit.processes import can_connect, find_program, free_port, stop_process, wait_until


class MosquittoMissing(RuntimeError):
    """mosquitto is not installed (tests skip, or fail under CI; benchmarks stop)."""


class Broker:
    """mosquitto on 127.0.0.1:<free port>, anonymous, configured by ``conf_lines()`` into ``workdir``.

    ``max_queued``: mosquitto keeps at most 1,000 QoS 1 messages per subscriber beyond those in flight by default
    and silently drops the rest, so a flood, or a service slowed by a loaded machine, would lose readings at the
    broker before the service sees them. 0 (the default here) means no limit: a loss that a test or a benchmark
    counts is the consumer's own; ``extra_conf`` may set a limit again (a later line wins).
    ``verbose_log``: every connection and message (tests read the log); False: errors and warnings only, for
    benchmarks at thousands of messages a second.
    """

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        persistence: bool = False,
        max_queued: int = 0,
        extra_conf: str | Sequence[str] = (),
        verbose_log: bool = True,
    ) -> None:
        exe = find_program("mosquitto")
        if exe is None:
            raise MosquittoMissing("mosquitto is not installed (apt-get install mosquitto)")
        self.exe = exe
        self.host = "127.0.0.1"
        self.port = free_port()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="pw-broker-")
            workdir = Path(self._tmp.name)
        self.workdir = Path(workdir)
        self.persistence = persistence
        self.max_queued = max_queued
        self.extra_conf = [extra_conf] if isinstance(extra_conf, str) else list(extra_conf)
        self.verbose_log = verbose_log
        self.conf_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.conf_path.write_text("\n".join(self.conf_lines()) + "\n")

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def conf_lines(self) -> list[str]:
        """The configuration file's lines (a subclass may write its own, keeping the listener and the log)."""
        lines = [f"listener {self.port} {self.host}", "allow_anonymous true", *self.root_user()]
        if self.persistence:
            lines += ["persistence true", f"persistence_location {self.workdir}/", "autosave_interval 1"]
        lines += [f"max_queued_messages {self.max_queued}", f"log_dest file {self.log_path}"]
        lines += ["log_type all"] if self.verbose_log else ["log_type error", "log_type warning"]
        return lines + self.extra_conf

    @staticmethod
    def root_user() -> list[str]:
        # As root, mosquitto drops to user `mosquitto`, which cannot write our temporary directory.
        return ["user root"] if os.geteuid() == 0 else []

    def start(self, timeout_s: float = 10.0) -> Broker:
        # stdout and stderr to DEVNULL: an undrained pipe can block the broker (it logs to its file).
        self.proc = subprocess.Popen(
            [self.exe, "-c", str(self.conf_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if not wait_until(lambda: can_connect(self.host, self.port), timeout_s):
            self.kill()
            raise RuntimeError(f"mosquitto did not start on port {self.port}: {self.log()[-2000:]}")
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the broker (SIGTERM saves persistence; SIGKILL loses what was not saved)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a paused broker ignores SIGTERM until continued
        stop_process(self.proc, sig)
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def pause(self) -> None:
        """SIGSTOP: the socket stays up but nothing answers."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def close(self) -> None:
        """Stop, and remove the temporary directory when this broker made one."""
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> Broker:
        return self if self.proc is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
