"""Logging set-up: called once, from the command line entry point."""

from __future__ import annotations

import logging


def setup_logging(level: str = "INFO") -> None:
    """One line per event, with the thread name (the service runs several named threads)."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s [%(threadName)s] %(name)s: %(message)s",
    )
