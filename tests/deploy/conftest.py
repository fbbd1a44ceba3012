"""Deployment test helpers: the shipped mosquitto config run by a real mosquitto on a free loopback port."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Broker

ROOT = Path(__file__).resolve().parents[2]
MOSQUITTO_DIR = ROOT / "config" / "mosquitto"


class ShippedBroker(Broker):
    """A mosquitto running config/mosquitto/mosquitto.conf with its password file and ACL.

    The container paths in the file are pointed at copies in ``workdir`` and the listener at a free loopback
    port; every other line (auth, ACL, persistence, limits) is the shipped one.
    """

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        for name in ("passwd", "acl"):
            shutil.copy(MOSQUITTO_DIR / name, workdir / name)
            (workdir / name).chmod(0o600)  # mosquitto 2.0.16+ warns on readable ones
        data_dir = workdir / "data"
        data_dir.mkdir()
        lines = []
        for line in (MOSQUITTO_DIR / "mosquitto.conf").read_text().splitlines():
            stripped = line.strip()
            if re.match(r"^(listener|log_dest)\b", stripped):
                continue
            line = line.replace("/mosquitto/config/", f"{workdir}/").replace("/mosquitto/data/", f"{data_dir}/")
            lines.append(line)
        lines += [f"listener {self.port} 127.0.0.1", f"log_dest file {self.log_path}"]
        if os.geteuid() == 0:
            lines.append("user root")
        self.conf_path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def shipped_broker(tmp_path: Path) -> Iterator[ShippedBroker]:
    broker = ShippedBroker(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def dev_password(user: str) -> str:
    return (MOSQUITTO_DIR / "dev-secrets" / f"{user}.txt").read_text().splitlines()[0]


Credentials = Callable[[str], tuple[str, str]]


# The service fixtures (tiny trained artifacts, a config for the mosquitto fixture): the live Prometheus test
# runs the same service the service tests run.
from tests.service.conftest import artifacts, service_config  # noqa: E402, F401
