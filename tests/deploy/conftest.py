"""Deployment test helpers: the shipped mosquitto config run by a real mosquitto on a free loopback port."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import require_program
from tests.kit import Broker

ROOT = Path(__file__).resolve().parents[2]
MOSQUITTO_DIR = ROOT / "config" / "mosquitto"


class ShippedBroker(Broker):
    """A mosquitto running config/mosquitto/mosquitto.conf with its password file and ACL.

    The container paths in the file are pointed at copies in ``workdir`` and the listener at a free loopback
    port; every other line (auth, ACL, persistence, limits) is the shipped one. Started, stopped and waited for
    as every test broker is (tests.kit.Broker); only the configuration file differs.
    """

    def conf_lines(self) -> list[str]:
        for name in ("passwd", "acl"):
            shutil.copy(MOSQUITTO_DIR / name, self.workdir / name)
            (self.workdir / name).chmod(0o600)  # mosquitto 2.0.16+ warns on readable ones
        data_dir = self.workdir / "data"
        data_dir.mkdir(exist_ok=True)
        lines = []
        for line in (MOSQUITTO_DIR / "mosquitto.conf").read_text().splitlines():
            if re.match(r"^(listener|log_dest)\b", line.strip()):
                continue
            lines.append(
                line.replace("/mosquitto/config/", f"{self.workdir}/").replace("/mosquitto/data/", f"{data_dir}/")
            )
        return [*lines, f"listener {self.port} {self.host}", f"log_dest file {self.log_path}", *self.root_user()]


@pytest.fixture
def shipped_broker(tmp_path: Path) -> Iterator[ShippedBroker]:
    require_program("mosquitto", "mosquitto")
    broker = ShippedBroker(tmp_path).start()
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
