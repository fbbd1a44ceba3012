"""Shared plumbing of the detection-quality benchmarks (quality_sim.py, quality_skab.py).

Every figure goes through the service's own backtest path: ``monitor.backtest.run_backtest`` (buffers ->
ScoringEngine -> AlertBoard, event time only, causal) and ``monitor.evaluation.judge.evaluate``. This module only
builds what those take: detectors fitted per unit and a ``PlantwatchConfig`` naming them.

Detectors (``DetectorSpec.kind``):

- ``lstm_ae`` / ``bilstm``: reconstruction detectors trained with ``models.train.train_model``;
- ``lstm``: an LSTM forecaster; its one-step forecast residual is the ``forecast`` stream (the unit's
  configured reconstruction detector is then a PCA, whose events are ignored for this row);
- ``pca``: ``models.pca.PcaDetector`` (T²/Q, scikit-learn PCA).
"""

from __future__ import annotations

import math
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.alerts.policy import AlertPolicy
from monitor.config import PlantwatchConfig
from monitor.evaluation.points import PointMetrics
from monitor.wire.csvfile import CsvData

NEURAL_KINDS = ("lstm_ae", "bilstm", "lstm")


@dataclass(frozen=True)
class DetectorSpec:
    """How to build one detector for a unit from its normal rows."""

    label: str  # row label in the tables
    kind: str  # "pca" | "lstm_ae" | "bilstm" | "lstm"
    window: int = 30
    score_steps: int | None = None  # reconstruction detectors: newest rows the score averages
    hidden_size: int | None = None
    latent_size: int | None = None
    num_layers: int | None = None
    epochs: int = 15
    train_step: int = 2
    calibration: str = "pot"
    target_far: float = 1e-4
    variance: float = 0.95  # pca: share of variance kept
    limit_quantile: float = 0.99  # pca: T² and Q control limits
    holdout: float = 0.0  # pca: newest share of the rows that calibrates the threshold instead of fitting
    adapt_rows: int = 0  # pca: EWMA time constant (rows) of the normal level; 0 = fixed (see models.pca)
    val_fraction: float = 0.2
    calib_fraction: float = 0.2
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def stream(self) -> str:
        """The Score.detector stream this spec is judged on."""
        return "forecast" if self.kind == "lstm" else "reconstruction"


def policy_dict(policy: AlertPolicy) -> dict[str, Any]:
    """The config ``alerts`` section of an AlertPolicy (adaptive thresholds and the envelope rule included)."""
    a = policy.adapt
    return {
        "fire_hits": policy.fire_hits,
        "fire_window": policy.fire_window,
        "resolve_hits": policy.resolve_hits,
        "resolve_ratio": policy.resolve_ratio,
        "min_duration_s": policy.min_duration_s,
        "renotify_s": policy.renotify_s,
        "critical_ratio": policy.critical_ratio,
        "fire_evidence": policy.fire_evidence,
        "outside_envelope": policy.outside_envelope,
        "adaptive": {
            "enabled": a.enabled,
            "target_far": a.target_far,
            "max_drift_per_hour": a.max_drift_per_hour,
            "floor": a.floor,
            "ceiling": a.ceiling,
            "guard_s": a.guard_s,
            "max_peaks": a.max_peaks,
            "min_peaks": a.min_peaks,
        },
    }


def fit_detector(
    spec: DetectorSpec,
    normal: npt.NDArray[np.float64],
    sensors: Sequence[str],
    name: str,
    workdir: Path,
    period_s: float = 1.0,
    seed: int = 0,
    units: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Fit ``spec`` on one unit's normal rows [T, S]; returns {"detector": model, "forecaster": model | None}.

    ``units`` (neural kinds only): ``normal`` holds several units' rows one after the other, as
    ``models.train.train_model`` takes them (models.segments.UnitRows): one fleet model for all of them."""
    from models.pca import PcaDetector

    sensors = tuple(sensors)
    if spec.kind == "pca":
        if units is not None:
            raise ValueError("a fleet PCA is not built here: fit one per unit")
        det = PcaDetector.fit(
            normal,
            sensors,
            name=name,
            window=spec.window,
            score_steps=spec.score_steps,
            variance=spec.variance,
            limit_quantile=spec.limit_quantile,
            calibration=spec.calibration,
            target_far=spec.target_far,
            holdout=spec.holdout,
            adapt_rows=spec.adapt_rows,
            period_s=period_s,
        )
        return {"detector": det, "forecaster": None}
    if spec.kind not in NEURAL_KINDS:
        raise ValueError(f"unknown detector kind {spec.kind!r}")
    from models.artifacts import load_artifact
    from models.train import train_model
    from models.train_config import TrainConfig

    sizes: dict[str, Any] = {
        k: v
        for k, v in (
            ("hidden_size", spec.hidden_size),
            ("latent_size", spec.latent_size),
            ("num_layers", spec.num_layers),
        )
        if v is not None
    }
    config = TrainConfig(
        kind=spec.kind,
        name=name,
        window=spec.window,
        score_steps=spec.score_steps if spec.kind != "lstm" else None,
        epochs=spec.epochs,
        train_step=spec.train_step,
        calibration=spec.calibration,
        target_far=spec.target_far,
        val_fraction=spec.val_fraction,
        calib_fraction=spec.calib_fraction,
        seed=seed,
        device="cpu",
        progress=False,
        **sizes,
        **spec.extra,
    )
    path = train_model(normal, sensors, workdir / name, config, period_s=period_s, units=units)
    model = load_artifact(path, device="cpu")
    if spec.kind == "lstm":
        # The unit needs a reconstruction detector; a PCA costs nothing and its events are not counted here.
        companion = PcaDetector.fit(normal, sensors, name=f"{name}-pca", window=1, period_s=period_s)
        return {"detector": companion, "forecaster": model}
    return {"detector": model, "forecaster": None}


def make_config(
    units: Mapping[str, tuple[str, ...]],
    fitted: Mapping[str, Mapping[str, Any]],
    policy: AlertPolicy,
    period_s: float = 1.0,
    max_gap_periods: int = 3,
    sensor_health: Mapping[str, Any] | None = None,
) -> tuple[PlantwatchConfig, dict[str, Any]]:
    """A config with one unit per entry of ``units`` and the models dict ``run_backtest`` takes; ``sensor_health``:
    the units' ``sensor_health`` section (None: the defaults)."""
    unit_cfgs = []
    models: dict[str, Any] = {}
    for unit, sensors in units.items():
        f = fitted[unit]
        det = f["detector"]
        entry: dict[str, Any] = {
            "name": unit,
            "sensors": list(sensors),
            "period_s": period_s,
            "max_gap_periods": max_gap_periods,
            "detector": {"name": det.name, "artifact": "in-memory"},
            "alerts": policy_dict(policy),
        }
        if sensor_health is not None:
            entry["sensor_health"] = dict(sensor_health)
        models[det.name] = det
        fc = f.get("forecaster")
        if fc is not None:
            entry["forecaster"] = {"name": fc.name, "artifact": "in-memory"}
            models[fc.name] = fc
        unit_cfgs.append(entry)
    cfg = PlantwatchConfig.model_validate({"units": unit_cfgs, "scheduler": {"device": "cpu"}})
    return cfg, models


def csv_data(ts: npt.NDArray[np.float64], per_unit: Mapping[str, npt.NDArray[np.float64]]) -> CsvData:
    """CsvData for units sharing one timeline ``ts`` [T] (rows interleaved by time, like a simulator CSV)."""
    units = list(per_unit)
    n = ts.shape[0]
    all_ts = np.repeat(ts, len(units))
    row_units = tuple(units) * n
    index = {u: np.arange(i, n * len(units), len(units), dtype=np.intp) for i, u in enumerate(units)}
    return CsvData(all_ts, row_units, dict(per_unit), index, 0)


def add_points(a: PointMetrics, b: PointMetrics) -> PointMetrics:
    return PointMetrics(a.tp + b.tp, a.fp + b.fp, a.tn + b.tn, a.fn + b.fn)


def fmt(value: float, digits: int = 2) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def machine() -> str:
    import os

    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def with_label(spec: DetectorSpec, **changes: Any) -> DetectorSpec:
    return replace(spec, **changes)
