"""The `plantwatch` command line: one console script, one subcommand per job.

Each subcommand lives in its own module, which exposes ``HELP`` (one line),
``add_arguments(parser)`` and ``main(args) -> int``. Only the module of the
command being run is imported, so `plantwatch simulate` works without torch,
and a broken command module cannot take the others down with it.
Exit codes: 0 ok, 1 runtime failure, 2 bad input or config (for `run`: anything refused before it connects,
a metrics port it cannot listen on included; the systemd unit does not restart on 2).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from monitor.log import setup_logging

# command name -> (module implementing it, one-line help shown by `plantwatch --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("monitor.commands.run", "Run the monitoring service."),
    "check-config": (
        "monitor.commands.check_config",
        "Check a config as `run` does before connecting; print each problem with its key path.",
    ),
    "print-config": ("monitor.commands.print_config", "Print the effective config (secrets masked)."),
    "backtest": ("monitor.commands.backtest", "Score a CSV offline through the service's pipeline."),
    "train": (
        "monitor.commands.train",
        "Train a model on normal data (a CSV or a recording directory; one unit or a fleet) and write an artifact.",
    ),
    "export-onnx": (
        "monitor.commands.export_onnx",
        "Add the ONNX serving graph (CPU scoring without torch) to artifacts written before it existed.",
    ),
    "simulate": ("monitor.commands.simulate", "Simulate reactors with injected faults, to CSV or live over MQTT."),
    "replay": ("monitor.commands.replay", "Replay a CSV over MQTT in time order."),
    "demo": (
        "monitor.commands.demo",
        "The newcomer's demo: embedded broker, simulator with a fault, models, service, live view.",
    ),
    "report": ("monitor.commands.report", "Draw a PNG report of scores, alerts and faults (after backtest or demo)."),
}


def build_parser(selected: str | None) -> argparse.ArgumentParser:
    """A parser listing every command; only ``selected`` gets its full argument set (and its module imported)."""
    parser = argparse.ArgumentParser(prog="plantwatch", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == selected:
            importlib.import_module(module_name).add_arguments(command_parser)
    return parser


def _selected_command(argv: list[str]) -> str | None:
    return next((arg for arg in argv if arg in COMMANDS), None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(_selected_command(argv)).parse_args(argv)
    setup_logging(args.log_level)
    module = importlib.import_module(COMMANDS[args.command][0])
    result: int = module.main(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
