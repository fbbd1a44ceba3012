"""Fixtures of the integration tests: the service tests' tiny trained artifacts (tests/service/conftest.py)."""

from tests.service.conftest import artifacts

__all__ = ["artifacts"]
