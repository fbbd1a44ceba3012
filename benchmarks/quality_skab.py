"""SKAB under its published protocol, through the service's backtest path: point-wise F1, FAR and MAR.

    .venv/bin/python -m benchmarks.quality_skab                      # full: every detector on the 34 files
    .venv/bin/python -m benchmarks.quality_skab --quick              # 6 files, 5 epochs
    .venv/bin/python -m benchmarks.quality_skab --detectors service  # the default deployment, and its sensor detector
    .venv/bin/python -m benchmarks.quality_skab --detectors pca --validate   # the training-part validation only

Protocol (the data sets' README, ../shared/datasets/README.md beside the repository): for each of the 34
experiment files (valve1/, valve2/, other/), the first 400 rows train that file's model and the remaining rows are
its test part; metrics are pooled over the 34 test parts. FAR = FP / (FP + TN), MAR = FN / (FN + TP), in percent.

How a file is scored: the whole file (training rows included, so the first test row has its full window of
earlier rows) is fed row by row through ``monitor.backtest.run_backtest`` with one unit whose detector was
fitted on the file's first 400 rows; a test row is predicted anomalous while an alert episode of that unit's
detector is active (``monitor.evaluation``: from the first ``firing`` event to the ``resolved`` event; the
``service`` row: while any of its three detectors' episodes is, as the operator sees it). Every decision at
row t uses rows up to t only: the buffers, the scorer and the alert state machine are causal, and nothing looks
back to relabel earlier rows (unlike the leaderboard's post-processing).

Tuning uses the training parts only (``--validate``): each file's rows 0-199 fit a detector and rows 200-399 are
scored through the same backtest, with a synthetic level shift of 3 training sds added to one sensor (the 8 in
turn, by file) on rows 300-399: F1 / FAR / MAR over rows 200-399 of the 34 files then weigh sensitivity against
false alarms without touching a test part. Labels of the test parts are read only to compute the final figures.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.quality_common import DetectorSpec, add_points, fit_detector, machine, make_config
from monitor.alerts.policy import AlertPolicy
from monitor.backtest import run_backtest
from monitor.evaluation.episodes import ANY, episodes_from_events
from monitor.evaluation.judge import evaluate_by_detector
from monitor.evaluation.points import PointMetrics
from monitor.evaluation.results import Evaluation
from monitor.messages import DETECTORS as DETECTOR_STREAMS
from monitor.wire.csvfile import CsvData, read_csv, read_table
from monitor.wire.labels import Label

# The data sets live beside the repository (../shared/datasets), not in it; --datasets or --root say otherwise.
DEFAULT_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
TRAIN_ROWS = 400
VALIDATION_FIT_ROWS = 200
SHIFT_ROWS = slice(300, 400)
SHIFT_SDS = 3.0
SENSORS = (
    "Accelerometer1RMS",
    "Accelerometer2RMS",
    "Current",
    "Pressure",
    "Temperature",
    "Thermocouple",
    "Voltage",
    "VolumeFlowRateRMS",  # "Volume Flow RateRMS" in the files (read_csv matches it without the spaces)
)
LEADERBOARD = (
    ("Conv-AE", 0.78, 13.55, 28.02),
    ("MSET", 0.78, 39.73, 14.13),
    ("T-squared+Q (PCA)", 0.76, 26.62, 24.92),
    ("LSTM-AE", 0.74, 29.96, 25.92),
    ("T-squared", 0.66, 19.21, 42.60),
    ("LSTM-VAE", 0.56, 9.13, 55.03),
    ("Vanilla LSTM", 0.54, 12.54, 59.53),
    ("Vanilla AE", 0.39, 2.59, 75.15),
    ("Isolation forest", 0.29, 2.56, 82.89),
)

# The settings below were chosen on the training parts only (``--validate``), by a rule fixed before the grid ran:
# the highest validation F1 among the settings with a validation FAR at most 13.55 % (the bar's FAR). Grid (PCA):
# sensors all | without the two thermal sensors; window 1 | 5; EWMA adaptation off | 30 | 100 rows; alert
# resolve after 10 quiet windows and 30 s | after 3 and 0 s; quantile 1 % | POT 0.1 %. Grid (LSTM-AE and
# forecaster, thermal sensors out): window 5 | 10; score over the newest row | the whole window. The BiLSTM takes
# the LSTM-AE's choice. The untuned starting point (all sensors, PCA window 5, scores over the whole window) is
# ``--exclude "" --set window=5`` for the PCA. SKAB's training parts are 400 rows: small windows, small models.
#
# Temperature and Thermocouple drift by 1-2.6 training sds within the 400 training rows of most files (the water
# warms up through a run): a detector that sees them flags the rest of the run as anomalous.
DEFAULT_EXCLUDE = ("Temperature", "Thermocouple")
_NEURAL: dict[str, Any] = {
    "epochs": 40,
    "train_step": 1,
    "calibration": "quantile",
    "target_far": 0.01,
    "extra": {"patience": 8},
}
DETECTORS: dict[str, DetectorSpec] = {
    "pca": DetectorSpec("PCA T2/Q", "pca", window=1, calibration="quantile", target_far=0.01),
    "lstm_ae": DetectorSpec(
        "LSTM-AE (default detector)", "lstm_ae", window=10, score_steps=1, hidden_size=16, latent_size=4, **_NEURAL
    ),
    "bilstm": DetectorSpec(
        "BiLSTM (seed)", "bilstm", window=10, score_steps=1, hidden_size=16, num_layers=1, **_NEURAL
    ),
    "lstm": DetectorSpec("LSTM forecast residual", "lstm", window=10, hidden_size=16, num_layers=1, **_NEURAL),
    # The default deployment: the two rows above on one unit beside the sensor detector (its default rules, on the
    # LSTM-AE's training envelope), judged on any of their alerts; its run also gives the sensor detector's row.
    "service": DetectorSpec("service: LSTM-AE + LSTM forecast + sensor health, any detector", "service"),
}
SERVICE_PARTS = ("lstm_ae", "lstm")
SENSOR_ROW = "sensor health (in the service run)"
QUICK_FILES = ("valve1/0.csv", "valve1/5.csv", "valve2/0.csv", "other/1.csv", "other/9.csv", "other/13.csv")


def experiment_files(root: Path) -> list[Path]:
    """The 34 experiment files in a fixed order (valve1, valve2, other; numerically within a folder)."""
    files: list[Path] = []
    for folder in ("valve1", "valve2", "other"):
        files.extend(sorted((root / folder).glob("*.csv"), key=lambda p: int(p.stem)))
    return files


def unit_name(path: Path) -> str:
    return f"{path.parent.name}-{path.stem}"


def read_anomaly(path: Path) -> np.ndarray:
    """The file's ``anomaly`` column as booleans [N] (row order)."""
    table = read_table(path)
    col = table.column_index("anomaly")
    if col is None:
        raise ValueError(f"{path}: no anomaly column")
    flags: np.ndarray = table.values[:, col] > 0.5
    return flags


def label_runs(unit: str, ts: np.ndarray, flags: np.ndarray) -> list[Label]:
    """One Label per run of anomalous rows, [ts of its first row, ts of its last row] (closed)."""
    labels = []
    padded = np.concatenate([[False], flags, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        labels.append(Label(unit, "anomaly", float(ts[start]), float(ts[stop - 1])))
    return labels


def score_file(
    path: Path,
    spec: DetectorSpec,
    policy: AlertPolicy,
    workdir: Path,
    validate: bool,
    sensors: tuple[str, ...] = SENSORS,
    shift_sensor: int = 0,
    seed: int = 0,
    parts: tuple[DetectorSpec, ...] = (),
) -> tuple[dict[str, Evaluation], dict[str, int]]:
    """One file under the protocol, or with ``validate`` its training-part validation (module docstring): the
    evaluation per row label (one row; the ``service`` spec, fitted from its ``parts``: its own and the sensor
    detector's) and the buffers' counts."""
    unit = unit_name(path)
    full = read_csv(path, {unit: SENSORS}, default_unit=unit)
    everything = full.values[unit].copy()  # [N, 8] every sensor, so a synthetic shift can hit any of them
    anomaly = read_anomaly(path)
    if validate:
        # Only the training part is read: rows 0-199 fit, rows 200-399 are judged. A synthetic level shift of
        # SHIFT_SDS training sds on one sensor (cycling over the 8 by file) in rows 300-399 measures sensitivity,
        # the other rows false alarms (other/2.csv's real anomaly in its training rows is labelled too).
        n = TRAIN_ROWS
        j = shift_sensor % len(SENSORS)
        sd = float(np.nanstd(everything[:VALIDATION_FIT_ROWS, j])) or 1.0
        everything[SHIFT_ROWS, j] += SHIFT_SDS * sd
        ts = full.ts[:n]
        labels = [*label_runs(unit, ts, anomaly[:n]), Label(unit, "synthetic", float(ts[300]), float(ts[399]))]
        fit_rows, timeline = VALIDATION_FIT_ROWS, ts[VALIDATION_FIT_ROWS:]
    else:
        n = full.ts.shape[0]
        ts = full.ts
        labels = label_runs(unit, ts, anomaly)
        fit_rows, timeline = TRAIN_ROWS, ts[TRAIN_ROWS:]
    values = everything[:n, [SENSORS.index(s) for s in sensors]]

    def fit(one: DetectorSpec) -> dict[str, Any]:
        return fit_detector(one, values[:fit_rows], sensors, f"{one.kind}-{unit}", workdir, seed=seed)

    if spec.kind == "service":
        detector, forecaster = (fit(part) for part in parts)
        fitted = {"detector": detector["detector"], "forecaster": forecaster["forecaster"]}
        streams = {spec.label: ANY, SENSOR_ROW: "sensor"}
    else:
        fitted, streams = fit(spec), {spec.label: spec.stream}
    cfg, models = make_config({unit: sensors}, {unit: fitted}, policy)
    feed = CsvData(ts, full.units[:n], {unit: values}, {unit: np.arange(n)}, 0)
    result = run_backtest(cfg, models, feed, out_dir=None, batch_size=1024)
    by_stream = evaluate_by_detector(
        episodes_from_events(result.events), labels, {unit: timeline}, tolerance_s=0.0, detectors=DETECTOR_STREAMS
    )
    counts = {"rows": result.rows, "skipped": sum(result.skipped.values()), "rejected": sum(result.rejected.values())}
    return {label: by_stream[stream] for label, stream in streams.items()}, counts


def run(
    root: Path,
    names: list[str],
    policy: AlertPolicy,
    quick: bool,
    validate: bool,
    sensors: tuple[str, ...] = SENSORS,
    seed: int = 0,
) -> list[tuple[str, PointMetrics, dict[str, int], float]]:
    files = experiment_files(root)
    if quick:
        files = [root / f for f in QUICK_FILES]

    def quick_spec(spec: DetectorSpec) -> DetectorSpec:
        return replace(spec, epochs=5) if quick and spec.kind != "pca" else spec

    rows = []
    for name in names:
        spec = quick_spec(DETECTORS[name])
        parts = tuple(quick_spec(DETECTORS[p]) for p in SERVICE_PARTS) if spec.kind == "service" else ()
        totals: dict[str, PointMetrics] = {}
        counts = {"rows": 0, "skipped": 0, "rejected": 0}
        episodes: dict[str, int] = {}
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="skab-") as tmp:
            for i, path in enumerate(files):
                evaluations, c = score_file(
                    path, spec, policy, Path(tmp), validate, sensors, shift_sensor=i, seed=seed, parts=parts
                )
                for label, ev in evaluations.items():
                    totals[label] = add_points(totals.get(label, PointMetrics(0, 0, 0, 0)), ev.points)
                    episodes[label] = episodes.get(label, 0) + ev.episodes
                for k, v in c.items():
                    counts[k] += v
        seconds = time.perf_counter() - started
        for label, p in totals.items():
            rows.append((label, p, {**counts, "episodes": episodes[label]}, seconds))
            print(
                f"# {label}: F1 {p.f1:.3f} FAR {p.far_pct:.2f} % MAR {p.mar_pct:.2f} % "
                f"({len(files)} files, {seconds:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--datasets",
        type=Path,
        default=DEFAULT_DATASETS,
        help="the data sets folder, SKAB in its skab/ (default: ../shared/datasets beside the repository)",
    )
    parser.add_argument(
        "--root", type=Path, help="the SKAB folder itself (valve1/, valve2/, other/); default DATASETS/skab"
    )
    parser.add_argument("--quick", action="store_true", help="6 files, 5 epochs: a smoke run")
    parser.add_argument(
        "--validate", action="store_true", help="training-part validation only (rows 200-399, synthetic shift)"
    )
    parser.add_argument("--detectors", default=",".join(DETECTORS), help=f"comma list of {', '.join(DETECTORS)}")
    parser.add_argument("--seed", type=int, default=0, help="training seed of the neural detectors (default 0)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a DetectorSpec field of every detector (e.g. target_far=0.001, window=20)",
    )
    parser.add_argument(
        "--exclude",
        default=",".join(DEFAULT_EXCLUDE),
        help=f"comma list of sensors the detectors do not see (default: {','.join(DEFAULT_EXCLUDE)}; '' for none)",
    )
    parser.add_argument("--fire-hits", type=int, default=3)
    parser.add_argument("--fire-window", type=int, default=5)
    parser.add_argument("--resolve-hits", type=int, default=10)
    parser.add_argument("--resolve-ratio", type=float, default=0.8)
    parser.add_argument("--min-duration-s", type=float, default=30.0)
    parser.add_argument(
        "--fire-evidence", type=float, default=AlertPolicy().fire_evidence, help="0: the k-of-n rule alone"
    )
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.detectors.split(",") if n.strip()]
    unknown = [n for n in names if n not in DETECTORS]
    if unknown:
        parser.error(f"unknown detector(s) {unknown}; choose from {', '.join(DETECTORS)}")
    policy = AlertPolicy(
        fire_hits=args.fire_hits,
        fire_window=args.fire_window,
        resolve_hits=args.resolve_hits,
        resolve_ratio=args.resolve_ratio,
        min_duration_s=args.min_duration_s,
        fire_evidence=args.fire_evidence,
    )
    excluded = {s.strip() for s in args.exclude.split(",") if s.strip()}
    if excluded - set(SENSORS):
        parser.error(f"unknown sensor(s) {sorted(excluded - set(SENSORS))}; sensors: {', '.join(SENSORS)}")
    sensors = tuple(s for s in SENSORS if s not in excluded)
    import torch

    torch.set_num_threads(1)
    for item in args.set:
        key, _, text = item.partition("=")
        if key not in DetectorSpec.__dataclass_fields__ or key in ("label", "kind", "extra"):
            parser.error(f"--set {item!r}: not a DetectorSpec field")
        value: Any = text if key == "calibration" else (float(text) if "." in text or "e" in text else int(text))
        for n in names:
            DETECTORS[n] = replace(DETECTORS[n], **{key: value})
    root = args.root or args.datasets / "skab"
    if not root.is_dir():
        parser.error(f"no SKAB folder at {root} (--datasets DIR or --root DIR)")
    rows = run(root, names, policy, args.quick, args.validate, sensors, args.seed)
    what = "test parts"
    if args.validate:
        what = "training-part validation (fit rows 0-199, judge rows 200-399, synthetic shift on rows 300-399)"
    mode = "quick (6 files, 5 epochs)" if args.quick else "full (34 files)"
    settings = "; ".join(f"{n}: {DETECTORS[n]}" for n in names)
    print(f"\nSKAB {what}, {mode}; seed {args.seed}; sensors {', '.join(sensors)}")
    print(f"alert policy {policy}; machine: {machine()}\n")
    print(f"detectors: {settings}\n")
    print("| method | F1 | FAR % | MAR % | precision | recall | alert episodes | s |")
    print("|---|---|---|---|---|---|---|---|")
    for label, p, counts, seconds in rows:
        print(
            f"| plantwatch {label} (causal) | {p.f1:.3f} | {p.far_pct:.2f} | {p.mar_pct:.2f} | "
            f"{p.precision:.3f} | {p.recall:.3f} | {counts['episodes']} | {seconds:.0f} |"
        )
    if not args.validate:
        for label, f1, far, mar in LEADERBOARD:
            print(f"| {label} (leaderboard) | {f1:.2f} | {far:.2f} | {mar:.2f} | | | | |")
    skipped = {label: (c["skipped"], c["rejected"]) for label, _, c, _ in rows}
    print(f"\nwindows skipped / readings rejected by the buffers: {skipped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
