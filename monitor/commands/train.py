"""`plantwatch train --data FILE.csv --model KIND --out DIR`: train one model on normal data, write its artifact.

The data (models/train_data.py): a CSV or a directory of them (a recording of the service), one unit
(``--unit``) or a fleet of units of one design (``--units all`` / ``--units A,B``: one model, each unit's rows
kept apart, one shared scaler: models/train.py says why), restricted to ``--from`` / ``--to``, with the
periods of label CSVs and alert records left out (``--exclude``; a directory's own alert files by default).

Exit codes: 0 written, 2 bad input (file, columns, values, too few rows, options) or a target
false-alarm rate the data cannot support (nothing written; ``--allow-weak-calibration`` writes the
artifact anyway, with the warning), 1 unexpected failure. Other findings (the holdout's FAR far above
the target, less than a day of data, a constant or narrow sensor) are warnings on stderr, exit 0.
torch is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from models.kinds import DEFAULT_DETECTOR, KINDS
from monitor.wire.csvfile import TIME_COLUMNS

HELP = "train one model on normal data (a CSV or a recording directory; one unit or a fleet) and write its artifact"

# The kind registry (models.kinds: no torch), detectors first.
MODEL_KINDS: tuple[str, ...] = tuple(sorted(KINDS, key=lambda kind: KINDS[kind].role != "detector"))


def kinds_help() -> str:
    """``--model``'s help: every kind of the registry with its role."""

    def named(role: str) -> str:
        kinds = [k for k in MODEL_KINDS if KINDS[k].role == role]
        return ", ".join(k + (" (default)" if k == DEFAULT_DETECTOR else "") for k in kinds)

    return f"model kind: detectors {named('detector')}; forecasters {named('forecaster')} (models/kinds.py)"


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _time(text: str) -> float:
    from monitor.wire.timestamps import parse_time

    try:
        return parse_time(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither epoch seconds nor ISO 8601") from None


def _units(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected 'all' or a comma-separated list of units")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        required=True,
        type=Path,
        help=f"CSV of normal operation: a time column ({', '.join(TIME_COLUMNS)}: epoch seconds or ISO 8601), "
        "optionally unit, then one column per sensor (monitor/wire/csvfile.py); or a directory: every *.csv under "
        "it (a recording of the service), sorted by first timestamp and joined per unit",
    )
    parser.add_argument("--model", required=True, choices=MODEL_KINDS, help=kinds_help())
    parser.add_argument("--out", required=True, type=Path, help="artifact directory to write")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--unit", help="train on this unit's rows (when the data has a unit column)")
    which.add_argument(
        "--units",
        type=_units,
        metavar="all|A,B,...",
        help="one fleet model for several units of one design (same sensors): every unit, or these; each unit's "
        "rows stay apart (no window spans two units) and every unit is in the training, validation, calibration "
        "and holdout parts; one scaler fitted on the pooled training rows (a warning when the units' means lie far "
        "apart)",
    )
    parser.add_argument(
        "--from",
        dest="time_from",
        type=_time,
        metavar="TIME",
        help="train on rows at or after TIME (epoch seconds or ISO 8601, no zone = UTC), per unit, before all else",
    )
    parser.add_argument("--to", dest="time_to", type=_time, metavar="TIME", help="... and before TIME")
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="leave out the periods FILE names (repeatable): a label CSV (unit,kind,start,end: [start, end]) or "
        "alert records (alerts.jsonl: each episode from its start to its resolve, to the end of the data if it never "
        "resolved); no window spans a cut. Prints the rows each file removed",
    )
    parser.add_argument(
        "--keep-alert-periods",
        action="store_true",
        help="--data DIR: train on the periods of the alerts*.jsonl files found in it too (left out by default)",
    )
    parser.add_argument(
        "--threads",
        type=_positive_int,
        metavar="N",
        help="torch intra-op threads for training (default: torch's own, one per CPU core, or OMP_NUM_THREADS)",
    )
    parser.add_argument("--sensors", help="comma-separated sensor columns, in model order (default: all)")
    parser.add_argument("--name", help="model name, used as the metric label (default: the kind)")
    parser.add_argument("--window", type=_positive_int, default=50, help="input rows per window (default 50)")
    parser.add_argument("--horizon", type=int, help="forecast steps (seq2seq default 10, other forecasters 1)")
    parser.add_argument("--hidden-size", type=_positive_int, help="hidden units (default: the seed's for the kind)")
    parser.add_argument("--num-layers", type=_positive_int, help="stacked recurrent layers")
    parser.add_argument("--dropout", type=float, help="dropout between recurrent layers")
    parser.add_argument("--latent-size", type=_positive_int, help="lstm_ae bottleneck size (default 8)")
    parser.add_argument(
        "--score-steps", type=_positive_int, help="detectors: newest rows the score averages (default: the window)"
    )
    parser.add_argument("--epochs", type=_positive_int, default=30, help="maximum epochs (default 30)")
    parser.add_argument("--patience", type=_positive_int, default=5, help="early-stopping patience in epochs")
    parser.add_argument("--batch-size", type=_positive_int, default=64, help="minibatch size (default 64)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    parser.add_argument("--scaler", choices=("standard", "minmax"), default="standard", help="feature scaling")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--target-far", type=float, default=1e-4, help="target false-alarm rate per scored window (default 1e-4)"
    )
    parser.add_argument(
        "--calibration", choices=("quantile", "pot"), default="pot", help="threshold method (default pot)"
    )
    parser.add_argument(
        "--allow-weak-calibration",
        action="store_true",
        help="write the artifact even when the data cannot support the target FAR (a warning, not exit 2)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _fail(message: str) -> int:
    print(f"plantwatch train: {message}", file=sys.stderr)
    return 2


def main(args: argparse.Namespace) -> int:
    from models.train_data import TrainingSelection, load_training_rows

    sensors = None
    if args.sensors is not None:
        sensors = [name.strip() for name in args.sensors.split(",") if name.strip()]
        if not sensors:
            return _fail("--sensors is empty")
    selection = TrainingSelection(
        data=args.data,
        sensors=sensors,
        units=[args.unit] if args.unit is not None else args.units,
        time_from=args.time_from,
        time_to=args.time_to,
        exclude=tuple(args.exclude),
        keep_alert_periods=args.keep_alert_periods,
    )
    try:
        rows = load_training_rows(selection)
    except ValueError as exc:  # CsvError and the alert reader's errors: one line naming the file
        return _fail(str(exc))
    if rows.values.shape[0] == 0:
        return _fail(f"{args.data}: no data rows")
    for note in rows.notes:
        print(note)

    import torch  # imported here, never at module import: `plantwatch --help` stays light

    from models.train import train_model
    from models.train_config import TrainConfig, min_rows
    from models.train_threshold import CalibrationUnsupported

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}{'' if args.threads else ' (torch default; --threads N)'}")

    try:
        config = TrainConfig(
            kind=args.model,
            name=args.name,
            window=args.window,
            horizon=args.horizon,
            hidden_size=args.hidden_size,
            num_layers=args.num_layers,
            dropout=args.dropout,
            latent_size=args.latent_size,
            score_steps=args.score_steps,
            epochs=args.epochs,
            patience=args.patience,
            batch_size=args.batch_size,
            lr=args.lr,
            scaler=args.scaler,
            device=args.device,
            seed=args.seed,
            target_far=args.target_far,
            calibration=args.calibration,
            progress=not args.no_progress,
        )
        config.validate()
        needed = min_rows(config)
        for unit in rows.units:
            if unit.rows < needed:
                which = f" unit {unit.unit}:" if len(rows.units) > 1 else ""
                return _fail(
                    f"{args.data}:{which} too few rows for window {config.window}: {unit.rows} rows, need at least "
                    f"{needed} (training, validation and calibration blocks)"
                )
        out = train_model(
            rows.values,
            rows.sensors,
            args.out,
            config,
            period_s=rows.period_s,
            timestamps=rows.timestamps,
            require_supported=not args.allow_weak_calibration,
            units=rows.units,
            selection=rows.selection,
        )
    except CalibrationUnsupported as exc:
        return _fail(f"{exc}; train on more data, raise --target-far, or pass --allow-weak-calibration")
    except ValueError as exc:
        return _fail(str(exc))
    from models.manifest_files import read_manifest
    from models.serving import load_for_serving

    model = load_for_serving(out)  # the artifact as the service will load it: every check of its runtime
    manifest = read_manifest(out)
    print(
        f"wrote {out}: {model.kind} ({model.role}), {len(model.sensors)} sensors, window {model.window}, "
        f"horizon {model.horizon}, {_fit_line(manifest['training']['figures'])}"
    )
    print(_threshold_line(manifest["threshold"]))
    if len(rows.units) > 1:
        units = ", ".join(f"{u.unit} {u.rows}" for u in rows.units)
        print(f"fleet model of {len(rows.units)} units (rows {units}); one scaler fitted on their pooled training rows")
    for note in manifest["training"].get("warnings", []):
        print(f"plantwatch train: warning: {note}", file=sys.stderr)
    return 0


def _fit_line(figures: dict[str, Any]) -> str:
    """How the fit went: a network's validation loss and epochs, a pca's components."""
    if "n_components" in figures:
        return (
            f"{figures['n_components']} components explaining {figures['explained_variance']:.1%} of the "
            f"standardized variance, fitted on {figures['fit_rows']} rows"
        )
    return f"val loss {figures['val_loss']:.5f} after {figures['epochs_run']} epochs"


def _threshold_line(record: dict[str, Any]) -> str:
    """The threshold as calibrated: the method actually used, how much data stood behind it, the holdout check."""
    holdout = record.get("holdout")
    checked = (
        f"holdout FAR {holdout['far']:.3%} on {holdout['n']} windows"
        if holdout and holdout.get("far") is not None
        else "no holdout check"
    )
    return (
        f"threshold {record['value']:.6g} ({record['method']}, target FAR {record['target_far']:g}, "
        f"{'supported' if record.get('supported') else 'NOT supported by the data'}): "
        f"{record['n_calibration']} calibration windows, n_effective {record['n_effective']:.0f}; {checked}"
    )
