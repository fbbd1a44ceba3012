"""The console script: every command is listed, and a command imports only what it needs."""

from __future__ import annotations

import subprocess
import sys

from monitor.cli import COMMANDS


def test_help_lists_every_command() -> None:
    result = subprocess.run([sys.executable, "-m", "monitor", "--help"], capture_output=True, text=True, check=True)
    for name in COMMANDS:
        assert name in result.stdout


def test_each_command_parses_its_own_help() -> None:
    for name in COMMANDS:
        result = subprocess.run([sys.executable, "-m", "monitor", name, "--help"], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert f"plantwatch {name}" in result.stdout


def test_simulate_command_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from monitor.cli import build_parser\n"
        "build_parser('simulate').parse_args(['simulate', '--scenario', 'x'])\n"
        "import monitor.commands.simulate, monitor.commands.replay\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_command_exits_2() -> None:
    result = subprocess.run([sys.executable, "-m", "monitor", "frobnicate"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
