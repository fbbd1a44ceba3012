"""The kit the tests and the benchmarks share: real parts started and read the same way everywhere.

- broker.py: ``Broker``, a private mosquitto on a free loopback port (stop, kill, pause, restart, its log).
- service.py: ``SpawnedService``, ``python -m monitor run`` as a subprocess, ready on /readyz, read on /metrics.
- scrape.py: ``scrape`` / ``Samples``, the one /metrics reader, and histogram quantiles over two scrapes.
- training.py: ``tiny_config`` / ``train_tiny``, the one recipe for small trained models.
- processes.py: ``free_port``, ``wait_until``, ``can_connect``, ``find_program``, ``stop_process``.

Import from ``tests.kit`` (the repository root on the path: pytest puts it there for tests; benchmarks run as
``python -m benchmarks.NAME`` from the root). Nothing here imports pytest (the benchmarks run without it) or is
imported by the product (monitor/, models/, simulators/).
"""

from tests.kit.broker import Broker, MosquittoMissing
from tests.kit.processes import can_connect, find_program, free_port, stop_process, wait_until
from tests.kit.scrape import Samples, increase, parse_labels, quantile, scrape, share_within
from tests.kit.service import ServiceExited, SpawnedService
from tests.kit.training import SEED_SIZES, TINY, tiny_config, train_tiny

__all__ = [
    "SEED_SIZES",
    "TINY",
    "Broker",
    "MosquittoMissing",
    "Samples",
    "ServiceExited",
    "SpawnedService",
    "can_connect",
    "find_program",
    "free_port",
    "increase",
    "parse_labels",
    "quantile",
    "scrape",
    "share_within",
    "stop_process",
    "tiny_config",
    "train_tiny",
    "wait_until",
]
