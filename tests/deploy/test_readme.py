"""README.md: the generated sections (configuration reference, metrics, model kinds) equal what the code renders now."""

from __future__ import annotations

import importlib.util
import re
from types import ModuleType

from tests.deploy.conftest import ROOT

README = ROOT / "README.md"
STALE = "README section is stale: run .venv/bin/python docs/config_reference.py --write"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("config_reference", ROOT / "docs" / "config_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_config_reference_matches_the_pydantic_models() -> None:
    gen = generator()
    section = gen.section_of(README.read_text())
    assert section == gen.render(), STALE
    # Every field of the tree is there, nested ones included.
    for key in ("`units[].alerts.fire_hits`", "`mqtt.tls.ca_file`", "`scheduler.device`", "`shutdown_timeout_s`"):
        assert key in section


def test_metrics_list_matches_the_metrics_module() -> None:
    gen = generator()
    section = gen.section_of(README.read_text(), gen.METRICS_START, gen.METRICS_END)
    assert section == gen.render_metrics(), STALE
    assert "| `plantwatch_readings_rejected_total` | counter | `reason` |" in section


def test_kinds_table_matches_the_registry() -> None:
    from models.kinds import KINDS

    gen = generator()
    section = gen.section_of(README.read_text(), gen.KINDS_START, gen.KINDS_END)
    assert section == gen.render_kinds(), STALE
    assert all(f"| `{kind}` | {spec.role} |" in section for kind, spec in KINDS.items())


def test_readme_starts_with_the_two_commands_and_shows_the_picture() -> None:
    text = README.read_text()
    head = text[: text.index("## Data flow")]
    assert "make demo" in head and "make test" in head
    (picture,) = re.findall(r"!\[[^\]]*\]\((docs/[^)]+\.png)\)", text)
    png = (ROOT / picture).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and 20_000 < len(png) < 400_000
    sections = ("## Data flow", "## Wire contract", "## Metrics", "## Configuration", "## Deployment", "## Benchmarks")
    for section in sections:
        assert section in text
