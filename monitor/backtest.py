"""Offline backtest: a CSV through the service's own stages, in one process, synchronously, as fast as it goes.

API::

    data = read_csv("run.csv", sensors_by_unit={"R1": ("temp", ...)}, default_unit="R1")   # monitor.wire.csvfile
    models = load_models(cfg, device)        # monitor.startup's, the service's runtime (on the CPU: ONNX Runtime);
                                             # StartupError names the field path
    result = run_backtest(cfg, models, data, out_dir=Path("out"), batch_size=1024, sinks=())   # -> BacktestResult
    result.events, result.timelines, result.scores, result.skipped, result.rejected, result.rows
    result.scores_by_detector          # Counter: scores per detector stream, in order of first appearance

The composition (the service's stages; only the source and the sinks differ)::

    CsvSource (monitor/sources.py) -> RingBuffers (monitor/buffers/) -> Scheduler.process (monitor/scheduler.py)
      -> ScoringEngine (monitor/scoring.py) -> OutputStage (monitor/outputs.py): metrics, AlertBoard
      -> sinks: RecordingSink (result.events), FilesSink (out_dir), and the caller's ``sinks``

CSV: read by monitor.wire.csvfile (``read_csv`` -> ``CsvData``; the one reader that training, the report and the
replay share): a header row; ``,`` or ``;`` separated; a time column (``timestamp``, ``datetime``, ``time``
or ``ts``: epoch seconds or ISO 8601, no zone = UTC, as in SKAB); an optional ``unit`` column; then one column
per sensor. Sensor columns are matched by name, or by the name without the characters a config name cannot hold
("Volume Flow RateRMS" -> "VolumeFlowRateRMS"). Other columns (labels such as SKAB's ``anomaly``) are ignored.
An empty or non-numeric cell is a missing reading (the buffers' hold-over rule applies). Each row becomes one
Reading with ``received_at = ts``, a value outside its limits refused by the service's rule (CsvSource).

The buffers' windows and health-only records (rows skipped for a gap: a sensor gone silent; monitor.sensor_health
scores them) are handed to ``Scheduler.process`` in row order, ``batch_size`` at a time, so every unit's scores
reach its AlertTrackers in event-time order, exactly as in the live service. Three differences from the service,
none of which changes what is scored or alerted: ``max_lag_s`` is infinite (a CSV is never "behind", so no window
is skipped for freshness) and nothing runs on a thread; the models are used as given (the service wraps them in
monitor.scheduler.timed for its inference histograms; either way each model pads its batches itself,
models.model_api.padded_infer); the metrics live in a registry of their own, and alert log lines are off (the
command prints every event).

Outputs in ``out_dir``: ``scores.csv`` and ``alerts.jsonl`` (the format: monitor/result_files.py), and with a shadow
candidate configured (UnitConfig.shadow, monitor/shadow.py) its would-be events apart in ``shadow-alerts.jsonl``
(``result.shadow_events``); the shadows' scores are in neither scores.csv nor ``result.scores``.
tests/integration/test_parity.py runs one CSV through this and through the service over a broker and compares.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry

from monitor.alerts.board import AlertBoard
from monitor.buffers.ring_buffers import RingBuffers
from monitor.messages import AlertEvent, WindowJob
from monitor.metrics import Metrics
from monitor.outputs import OutputStage
from monitor.params import specs_from_config
from monitor.result_files import FilesSink
from monitor.scheduler import JobQueue, Scheduler
from monitor.scoring import ScoringEngine
from monitor.scoring_records import ScoringOutput
from monitor.sinks import RecordingSink, Sink
from monitor.sources import CsvSource
from monitor.validation import unit_limits
from monitor.wire.csvfile import CsvData

if TYPE_CHECKING:
    from models.model_api import ScoringModel
    from monitor.config import PlantwatchConfig


@dataclass(slots=True)
class BacktestResult:
    rows: int = 0
    jobs: int = 0
    scores: int = 0
    scores_by_detector: Counter[str] = field(default_factory=Counter)  # which detectors ran, even without alerts
    shadow_scores_by_detector: Counter[str] = field(default_factory=Counter)  # the same for the shadow candidates
    non_finite: int = 0
    events: list[AlertEvent] = field(default_factory=list)
    shadow_events: list[AlertEvent] = field(default_factory=list)  # the shadow candidates' (monitor/shadow.py)
    skipped: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    timelines: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)
    wall_s: float = 0.0


def _metrics(cfg: PlantwatchConfig, models: Mapping[str, ScoringModel]) -> Metrics:
    """The service's metrics for these units and models, in a registry nobody scrapes (the stages write them)."""
    horizons = {h for m in models.values() if m.role == "forecaster" for h in (1, m.horizon)}
    return Metrics(
        CollectorRegistry(),
        units={u.name: tuple(u.sensors) for u in cfg.units},
        models={name: m.role for name, m in models.items()},
        horizons=horizons,
    )


def run_backtest(
    cfg: PlantwatchConfig,
    models: Mapping[str, ScoringModel],
    data: CsvData,
    out_dir: Path | None = None,
    batch_size: int = 1024,
    sinks: Sequence[Sink] = (),
) -> BacktestResult:
    """Feed the CSV through the service's stages (module docstring); write scores.csv and alerts.jsonl when
    ``out_dir`` is set; ``sinks`` take the outputs too (after the result's and the files')."""
    # A shadow candidate not among ``models`` (load_shadows refused it) is left out, as the service does.
    refused = {(u.name, role) for u in cfg.units for role, ref in u.shadow_refs().items() if ref.name not in models}
    specs, policies, unit_models = specs_from_config(cfg, models, refused)
    source = CsvSource(data, {u: s.sensors for u, s in specs.items()}, unit_limits(cfg))
    buffers = RingBuffers(specs)
    metrics = _metrics(cfg, models)
    engine = ScoringEngine(unit_models, models)
    result = BacktestResult(timelines={u: data.ts[idx] for u, idx in data.row_of_unit.items()})
    recording = RecordingSink()
    start = time.perf_counter()
    with ExitStack() as stack:
        has_shadows = any(spec.shadow_detector or spec.shadow_forecaster for spec in unit_models.values())
        files = [stack.enter_context(FilesSink(out_dir, shadows=has_shadows))] if out_dir is not None else []
        outputs = OutputStage(AlertBoard(policies), [recording, *files, *sinks], metrics, log_alerts=False)
        outputs.shadows.show(unit_models)

        def tally_and_output(out: ScoringOutput) -> None:
            result.scores += sum(1 for s in out.scores if not s.shadow)
            result.non_finite += out.non_finite
            result.scores_by_detector.update(s.detector for s in out.scores if not s.shadow)
            result.shadow_scores_by_detector.update(s.detector for s in out.scores if s.shadow)
            outputs.handle(out)

        # The backtest hands its windows to process() itself: the job queue is never read (run() is not called).
        scheduler = Scheduler(engine, JobQueue(1), tally_and_output, metrics, max_batch=batch_size, max_lag_s=math.inf)

        def process(jobs: list[WindowJob]) -> None:
            result.jobs += sum(1 for j in jobs if j.valid)  # windows; health-only records are not counted
            scheduler.process(jobs)

        pending: list[WindowJob] = []
        for reading in source.readings():
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
    result.events = recording.events
    result.shadow_events = recording.shadow_events
    result.wall_s = time.perf_counter() - start
    return result
