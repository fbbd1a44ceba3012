"""The service as deployed: ``python -m monitor run --config FILE`` in a subprocess, ready when /readyz says so.

    service = SpawnedService(config_dict, workdir, name="svc").start()   # waits for /readyz 200
    service.port, service.pid, service.proc, service.ready(), service.alive()
    service.scrape() -> Samples; service.metric(name, **labels) -> float (NaN when there is no such sample)
    service.signal(sig) -> exit code; service.kill(); service.stop(); service.start() again (the same port)
    service.log()
    with SpawnedService(config_dict, workdir).start(timeout_s=300) as service: ...   # stopped on exit

Its own process tree, its own GIL, its own memory: what the process tests and the service benchmarks measure.
The metrics port is fixed when the service is made (the config's, else a free one), so a restart answers on it.
The log (stdout and stderr) is appended to ``workdir/NAME.log`` across restarts.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.kit.processes import free_port, stop_process, wait_until
from tests.kit.scrape import Samples, scrape


class ServiceExited(RuntimeError):
    """The service ended while it was expected to run (its log's tail is in the message)."""


class SpawnedService:
    def __init__(self, config: Mapping[str, Any], workdir: Path, name: str = "service") -> None:
        metrics = dict(config.get("metrics") or {})
        self.port = int(metrics.get("port") or 0) or free_port()
        self.config = {**config, "metrics": {**metrics, "host": "127.0.0.1", "port": self.port}}
        self.config_path = workdir / f"{name}.yaml"
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the service was not started"
        return self.proc.pid

    def start(self, wait: bool = True, timeout_s: float = 90.0) -> SpawnedService:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "monitor", "run", "--config", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if wait:
            self.wait_ready(timeout_s)
        return self

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        if not wait_until(self.ready, timeout_s, 0.05):
            raise RuntimeError(f"the service was not ready after {timeout_s:g} s: {self.log()[-3000:]}")

    def ready(self) -> bool:
        """/readyz answers 200 (broker connected, models loaded, scoring); ServiceExited if the process ended."""
        if not self.alive():
            code = self.proc.returncode if self.proc is not None else None
            raise ServiceExited(f"the service exited with {code}: {self.log()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def scrape(self) -> Samples:
        return scrape(self.port)

    def metric(self, name: str, **labels: str) -> float:
        """The sample of ``name`` with ``labels``; without labels, its samples summed. NaN when there is none."""
        return self.scrape().value(name, **labels)

    def signal(self, sig: int, timeout_s: float = 30.0) -> int:
        """Send ``sig`` and wait for the exit (SIGKILL after ``timeout_s``); returns the exit code."""
        assert self.proc is not None, "the service was not started"
        return stop_process(self.proc, sig, timeout_s)

    def kill(self) -> int:
        return self.signal(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM if it runs (a clean stop: drain, `offline`, exit 0)."""
        if self.alive():
            self.signal(signal.SIGTERM)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> SpawnedService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
