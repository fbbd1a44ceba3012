"""`plantwatch export-onnx DIR [DIR ...]`: give artifacts written before the ONNX export their serving graph.

For each directory (models.onnx_export.upgrade_artifact): the artifact is loaded and checked by the torch
loader; one whose ONNX graph the ONNX loader accepts is left alone (and said so); otherwise its graph is exported,
verified against torch on synthetic reference windows, and written with its reference and the manifest's onnx
section (atomically; the weights are not touched). One line per artifact on stdout, a refusal on stderr.
Exit codes: 0 every artifact has a valid graph now, 2 any artifact failed (the others are still done).
torch is imported only when the command runs (it is needed: the graph is exported from the torch model).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "add the ONNX serving graph (CPU scoring without torch) to artifacts written before it existed"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="artifact directories to upgrade")


def main(args: argparse.Namespace) -> int:
    from models.artifact_io import ArtifactError
    from models.onnx_export import OnnxExportError, upgrade_artifact

    failed = 0
    for directory in args.dirs:
        try:
            done = upgrade_artifact(directory)
        except ArtifactError as exc:  # its message names the directory
            print(f"plantwatch export-onnx: {exc.reason}: {exc}", file=sys.stderr)
            failed += 1
            continue
        except (OnnxExportError, OSError) as exc:
            print(f"plantwatch export-onnx: {directory}: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"{directory}: {done}")
    return 2 if failed else 0
