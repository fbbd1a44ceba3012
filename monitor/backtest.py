"""Offline backtest: a CSV through the service's own buffers -> ScoringEngine -> AlertBoard, as fast as it goes.

API::

    data = read_csv("run.csv", sensors_by_unit={"R1": ("temp", ...)}, default_unit="R1")   # monitor.wire.csvfile
    result = run_backtest(cfg, models, data, out_dir=Path("out"), batch_size=1024)            # -> BacktestResult
    result.events, result.timelines, result.scores, result.skipped, result.rejected, result.rows
    result.scores_by_detector          # Counter: scores per detector stream, in order of first appearance
    load_models(cfg, device) -> {model name: LoadedModel}

CSV: read by monitor.wire.csvfile (``read_csv`` -> ``CsvData``; the one reader that training, the report and the
replay share): a header row; ``,`` or ``;`` separated; a time column (``timestamp``, ``datetime``, ``time``
or ``ts``: epoch seconds or ISO 8601, no zone = UTC, as in SKAB); an optional ``unit`` column; then one column
per sensor. Sensor columns are matched by name, or by the name without the characters a config name cannot hold
("Volume Flow RateRMS" -> "VolumeFlowRateRMS"). Other columns (labels such as SKAB's ``anomaly``) are ignored.
An empty or non-numeric cell is a missing reading (the buffers' hold-over rule applies).
A value outside its sensor's ``units[].limits`` is refused as ``out_of_range`` by the service's own rule
(monitor.validation.split_by_limits, which the live parser applies): the sensor is missing for that row, and the
sensor detector names it ``out_of_range``.

Each CSV row becomes one Reading with ``received_at = ts`` (event time only: the results do not depend on the
machine's speed). Windows are scored in batches of ``batch_size`` jobs, in row order, so every unit's scores reach
its AlertTrackers in event-time order, exactly as in the live service. The buffers' health-only records (rows
skipped for a gap: a sensor gone silent) travel in the same batches to the sensor detector (monitor.sensor_health).

Outputs in ``out_dir``: ``scores.csv`` (unit, ts, detector, model, score, threshold, top_sensor) and
``alerts.jsonl`` (one DESIGN.md alert payload per line).
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
import numpy.typing as npt

from monitor.alerts import AlertBoard, event_to_dict
from monitor.buffers import RingBuffers
from monitor.messages import AlertEvent, Reading, Score, WindowJob
from monitor.params import specs_from_config
from monitor.scoring import ScoringEngine
from monitor.validation import Bounds, split_by_limits, unit_limits
from monitor.wire.csvfile import CsvData

if TYPE_CHECKING:
    from models.inference import LoadedModel
    from monitor.config import PlantwatchConfig


@dataclass(slots=True)
class BacktestResult:
    rows: int = 0
    jobs: int = 0
    scores: int = 0
    scores_by_detector: Counter[str] = field(default_factory=Counter)  # which detectors ran, even without alerts
    non_finite: int = 0
    events: list[AlertEvent] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    timelines: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)
    wall_s: float = 0.0


def load_models(cfg: PlantwatchConfig, device: str) -> dict[str, LoadedModel]:
    """Load each configured artifact once (by model name); ValueError if one name points at two artifacts."""
    from models.artifacts import load_artifact

    paths: dict[str, Path] = {}
    for u in cfg.units:
        for ref in (u.detector, u.forecaster):
            if ref is None:
                continue
            seen = paths.setdefault(ref.name, Path(ref.artifact))
            if seen != Path(ref.artifact):
                raise ValueError(f"model name {ref.name!r} names two artifacts: {seen} and {ref.artifact}")
    return {name: load_artifact(path, device=device) for name, path in paths.items()}


def _readings(
    data: CsvData, sensors_by_unit: Mapping[str, Sequence[str]], limits: Mapping[str, Bounds]
) -> Iterator[Reading]:
    """One Reading per CSV row, in file order, missing cells left out, values outside their limits refused."""
    cursor = dict.fromkeys(data.values, 0)
    for i, unit in enumerate(data.units):
        r = cursor[unit]
        cursor[unit] = r + 1
        row = data.values[unit][r]
        values = {s: v for s, v in zip(sensors_by_unit[unit], row.tolist(), strict=True) if not math.isnan(v)}
        ts = float(data.ts[i])
        bounds = limits.get(unit)
        if bounds is not None:
            values, out_of_range = split_by_limits(values, bounds)
            yield Reading(unit, ts, values, received_at=ts, out_of_range=out_of_range)
        else:
            yield Reading(unit, ts, values, received_at=ts)


def run_backtest(
    cfg: PlantwatchConfig,
    models: Mapping[str, LoadedModel],
    data: CsvData,
    out_dir: Path | None = None,
    batch_size: int = 1024,
) -> BacktestResult:
    """Feed the CSV through buffers, scoring and alerts; write scores.csv and alerts.jsonl when out_dir is set."""
    specs, policies, unit_models = specs_from_config(cfg, models)
    sensors_by_unit = {u: s.sensors for u, s in specs.items()}
    buffers = RingBuffers(specs)
    engine = ScoringEngine(unit_models, models)
    board = AlertBoard(policies)
    result = BacktestResult(timelines={u: data.ts[idx] for u, idx in data.row_of_unit.items()})
    start = time.perf_counter()
    with ExitStack() as stack:
        score_file: TextIO | None = None
        alert_file: TextIO | None = None
        score_writer: Any = None
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            score_file = stack.enter_context(open(out_dir / "scores.csv", "w", newline="", encoding="utf-8"))
            alert_file = stack.enter_context(open(out_dir / "alerts.jsonl", "w", encoding="utf-8"))
            score_writer = csv.writer(score_file)
            score_writer.writerow(["unit", "ts", "detector", "model", "score", "threshold", "top_sensor"])

        def process(jobs: list[WindowJob]) -> None:
            out = engine.run(jobs)
            result.jobs += sum(1 for j in jobs if j.valid)  # windows; health-only records are not counted
            result.scores += len(out.scores)
            result.non_finite += out.non_finite
            for s in out.scores:
                result.scores_by_detector[s.detector] += 1
                if score_writer is not None:
                    score_writer.writerow(_score_row(s))
                event = board.update(s)
                if event is not None:
                    result.events.append(event)
                    if alert_file is not None:
                        alert_file.write(json.dumps(event_to_dict(event), allow_nan=False) + "\n")

        pending: list[WindowJob] = []
        for reading in _readings(data, sensors_by_unit, unit_limits(cfg)):
            res = buffers.add(reading)
            result.rows += 1
            for rej in res.rejections:
                result.rejected[rej.reason] += 1
            result.skipped.update(res.skipped)
            if res.records:  # the windows and the health-only records (sensor detector), in order
                pending.extend(res.records)
                if len(pending) >= batch_size:
                    process(pending)
                    pending = []
        res = buffers.flush()
        result.skipped.update(res.skipped)
        pending.extend(res.records)
        if pending:
            process(pending)
    result.wall_s = time.perf_counter() - start
    return result


def _score_row(s: Score) -> list[str]:
    top = max(s.sensor_errors.items(), key=lambda kv: kv[1])[0] if s.sensor_errors else ""
    return [s.unit, f"{s.ts:.3f}", s.detector, s.model, f"{s.score:.6g}", f"{s.threshold:.6g}", top]
