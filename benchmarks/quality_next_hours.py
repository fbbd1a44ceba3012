"""Does the trust transfer to a unit's own next hours? Alert load on normal data after N hours of history.

    .venv/bin/python -m benchmarks.quality_next_hours            # full: 3 seeds x 2 units, N = 2, 6, 24 h (+ small)
    .venv/bin/python -m benchmarks.quality_next_hours --quick    # 1 seed x 2 units, 3 epochs (+ small)
    .venv/bin/python -m benchmarks.quality_next_hours --small    # only the small-data section

Protocol (next hours). For each seed a scenario of fault-free reactor units is simulated for 24 h + the largest N,
with the scenario's normal unit-to-unit spread and disturbances (``parse_scenario`` defaults: spread 0.05,
disturbances 1.0, noise 1.0, as benchmarks/quality_sim.py uses them). For each N in {2, 6, 24} h, every unit gets
the service's default deployment, trained on its own first N hours only: the default detector (lstm_ae) and an
LSTM forecaster, sized as quality_sim's DETECTORS (window 30, hidden 32, latent 8 / 1 layer), with the same epochs
and training stride for every N and ``TrainConfig``'s defaults for everything else (calibration POT at 1e-4 per
window, validation / calibration / holdout fractions). The 24 h that follow are fed through the service's own
path, ``monitor.backtest.run_backtest`` (buffers -> ScoringEngine -> AlertBoard, event time, causal), with a
default ``PlantwatchConfig`` unit: no ``alerts`` or ``sensor_health`` section, so the config defaults apply
(k-of-n 3 of 5, adaptive thresholds, ``outside_envelope: warn``, the sensor detector on). Every alert is then a
false alarm. Reported per N over all units (monitor.evaluation: an episode is active from its first firing event
to its resolved event):

- anomaly alert time: the share of the 24 h during which a ``reconstruction`` or ``forecast`` episode was active
  (the two detectors' spans merged per unit, ``merge_episodes``); split into episodes whose first firing event
  names sensors outside the training envelope (``outside_envelope``) and those that do not (the two can overlap);
- episodes per unit-day: merged, and per detector; critical episodes (any firing event of severity critical;
  a merged episode is critical when one of its members is) and the time they stood at critical; the ``sensor``
  detector's episodes;
- what ``train`` said: the threshold method used, ``supported``, the warnings (``manifest["training"]``);
  which units were reported outside their envelope (an anomaly event naming such sensors), and how much of the
  time their data lay outside it by the scoring's own rule (newest value beyond the envelope's [min, max]
  widened by the unit's ``envelope_margin``, the config default).

The issue's targets are printed beside the figures: for N = 24 h, anomaly alerts cover <= 1 % of the time and
<= 1 episode per unit-day; for N = 2 and 6 h a unit meets the target either that way, or by being reported outside
its envelope instead of raising critical anomaly alerts for hours (read here: less than 1 h of critical anomaly
alert time in the 24 h).

Small data (section ``small``). One "plant" of 32 sensors: the 8 sensors of the 4 units of one scenario side by
side. The default detector (lstm_ae, hidden 32, latent 8, ``TrainConfig`` defaults for epochs, stride and
calibration) is trained on the plant's first 500 rows, at 1 Hz (8 min) and at a 10 s period (83 min), with
window 30 (the service's size here) and window 10 (more windows per split part); it is then backtested, the same
way, on 2 h of the same plant starting 1 h after the training rows end. Target: alert time <= 2 %, or ``train``
refused or warned (its supported / method / warnings are printed).

Nothing here was tuned on these runs: the sizes and the epochs / stride come from quality_sim (FULL: 8 epochs,
stride 8; QUICK: 3, 16), the seeds (21-23) are not quality_sim's, the calibration and alert policy are the
service's defaults, and the small-data windows and periods were fixed before the first run.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.quality_common import DetectorSpec, csv_data, fmt, machine
from benchmarks.quality_sim import DETECTORS
from monitor.backtest import BacktestResult, run_backtest
from monitor.config import PlantwatchConfig
from monitor.evaluation.episodes import Episode, episodes_from_events, merge_episodes
from monitor.evaluation.judge import DAY_S, evaluate
from monitor.messages import MODEL_DETECTORS, AlertEvent
from monitor.sensor_health import envelope_bounds
from simulators import parse_scenario, simulate

HOUR_S = 3600.0
ANOMALY = MODEL_DETECTORS
CRITICAL_HOURS = 1.0  # "critical anomaly alerts for hours": at least this much critical alert time in the 24 h
TARGET_SHARE = 0.01
TARGET_EPISODES = 1.0
SMALL_TARGET_SHARE = 0.02


@dataclass(frozen=True)
class Plan:
    seeds: tuple[int, ...]
    units: int
    history_h: tuple[float, ...]
    test_h: float
    epochs: int
    train_step: int


FULL = Plan(seeds=(21, 22, 23), units=2, history_h=(2.0, 6.0, 24.0), test_h=24.0, epochs=8, train_step=8)
QUICK = Plan(seeds=(21,), units=2, history_h=(2.0, 6.0, 24.0), test_h=24.0, epochs=3, train_step=16)


def train(
    spec: DetectorSpec,
    normal: np.ndarray,
    sensors: Sequence[str],
    name: str,
    workdir: Path,
    period_s: float,
    seed: int,
    epochs: int | None,
    train_step: int | None,
    window: int | None = None,
) -> Any:
    """One model with TrainConfig's defaults but for the sizes of ``spec`` (and epochs / stride when given)."""
    from models.artifacts import load_artifact
    from models.train import train_model
    from models.train_config import TrainConfig

    sizes = {
        k: v
        for k, v in (
            ("hidden_size", spec.hidden_size),
            ("latent_size", spec.latent_size),
            ("num_layers", spec.num_layers),
            ("score_steps", spec.score_steps if spec.kind != "lstm" else None),
            ("epochs", epochs),
            ("train_step", train_step),
        )
        if v is not None
    }
    config = TrainConfig(
        kind=spec.kind,
        name=name,
        window=window or spec.window,
        seed=seed,
        device="cpu",
        progress=False,
        **sizes,
    )
    path = train_model(normal, sensors, workdir / name, config, period_s=period_s)
    return load_artifact(path, device="cpu")


def unit_entry(unit: str, sensors: Sequence[str], period_s: float, detector: Any, forecaster: Any | None) -> dict:
    """A config unit as quality_common.make_config builds it, without an ``alerts`` section: the defaults apply."""
    entry: dict[str, Any] = {
        "name": unit,
        "sensors": list(sensors),
        "period_s": period_s,
        "detector": {"name": detector.name, "artifact": "in-memory"},
    }
    if forecaster is not None:
        entry["forecaster"] = {"name": forecaster.name, "artifact": "in-memory"}
    return entry


# --- per-unit figures from one backtest ---------------------------------------------------------------------------
@dataclass
class UnitRun:
    seed: int
    unit: str
    history_h: float
    days: float
    alert_share: float  # anomaly (reconstruction + forecast merged)
    inside_share: float
    outside_share: float
    critical_share: float
    episodes: int  # merged anomaly episodes
    by_detector: dict[str, int]
    critical: int  # merged anomaly episodes with a critical member
    sensor_episodes: int
    sensor_reasons: Counter[str]
    reported_outside: bool  # an anomaly event named sensors outside the envelope
    data_outside_share: float  # rows whose newest value lies outside the envelope (the scoring's rule)
    outside_sensors: Counter[str]
    manifests: dict[str, dict[str, Any]]  # model role -> manifest


def _share(episodes: Sequence[Episode], unit: str, ts: np.ndarray) -> float:
    if not episodes:
        return 0.0
    return evaluate(merge_episodes(episodes), [], {unit: ts}).alert_share_normal


def critical_spans(events: Sequence[AlertEvent]) -> list[Episode]:
    """The stretches during which an anomaly episode stood at critical: from a critical firing event to the
    episode's next warning event (a re-announcement outside the envelope) or its resolution."""
    spans: list[Episode] = []
    since: dict[str, AlertEvent] = {}
    for e in sorted(events, key=lambda e: e.ts):
        if e.detector not in ANOMALY:
            continue
        start = since.get(e.alert_id)
        if e.state == "firing" and e.severity == "critical":
            since.setdefault(e.alert_id, e)
        elif start is not None:
            spans.append(Episode(e.unit, e.detector, e.alert_id, start.ts, e.ts, None))
            del since[e.alert_id]
    spans += [Episode(e.unit, e.detector, i, e.ts, None, None) for i, e in since.items()]
    return spans


def unit_figures(
    result: BacktestResult, unit: str, models: Mapping[str, Any], margin: float | None, test_values: np.ndarray
) -> dict[str, Any]:
    """Alert figures of one unit of a backtest (its events only)."""
    ts = result.timelines[unit]
    events: list[AlertEvent] = [e for e in result.events if e.unit == unit]
    episodes = episodes_from_events(events)
    first: dict[str, AlertEvent] = {}
    critical_ids: set[str] = set()
    for e in events:
        if e.state == "firing":
            if e.alert_id not in first or e.ts < first[e.alert_id].ts:
                first[e.alert_id] = e
            if e.severity == "critical":
                critical_ids.add(e.alert_id)
    anomaly = [ep for ep in episodes if ep.detector in ANOMALY]
    outside = [ep for ep in anomaly if first[ep.alert_id].outside_envelope]
    inside = [ep for ep in anomaly if not first[ep.alert_id].outside_envelope]
    merged = merge_episodes(anomaly)
    merged_critical = sum(1 for m in merged if any(i in critical_ids for i in m.alert_id.split("+")))
    sensor = [ep for ep in episodes if ep.detector == "sensor"]
    reasons = Counter(first[ep.alert_id].reason or "?" for ep in sensor)
    reported = any(e.outside_envelope for e in events if e.detector in ANOMALY)
    # The scoring's envelope rule on the newest row of each window (detector's envelope; the forecaster's is
    # computed from the same rows).
    det = models["detector"]
    out_share, out_sensors = 0.0, Counter[str]()
    if margin is not None and det.envelope is not None:
        lo, hi = envelope_bounds(det.envelope, det.sensors, margin)
        with np.errstate(invalid="ignore"):
            mask = (test_values < lo) | (test_values > hi)
        out_share = float(mask.any(axis=1).mean())
        out_sensors = Counter({s: int(n) for s, n in zip(det.sensors, mask.sum(axis=0).tolist(), strict=True) if n})
    return {
        # the span the rows cover (24 h of rows: one unit-day; monitor.evaluation's last - first is a row short)
        "days": (float(ts[-1] - ts[0]) + (float(np.median(np.diff(ts))) if ts.size > 1 else 0.0)) / DAY_S,
        "alert_share": _share(anomaly, unit, ts),
        "inside_share": _share(inside, unit, ts),
        "outside_share": _share(outside, unit, ts),
        "critical_share": _share(critical_spans(events), unit, ts),
        "episodes": len(merged),
        "by_detector": {d: sum(1 for ep in anomaly if ep.detector == d) for d in ANOMALY},
        "critical": merged_critical,
        "sensor_episodes": len(sensor),
        "sensor_reasons": reasons,
        "reported_outside": reported,
        "data_outside_share": out_share,
        "outside_sensors": out_sensors,
    }


def run_next_hours(plan: Plan) -> list[UnitRun]:
    runs: list[UnitRun] = []
    specs = {"detector": DETECTORS["lstm_ae"], "forecaster": DETECTORS["lstm"]}
    for seed in plan.seeds:
        names = [f"s{seed}-u{i}" for i in range(plan.units)]
        scenario = parse_scenario({"name": f"next-hours-{seed}", "profile": "reactor", "units": {"names": names}})
        total_s = (max(plan.history_h) + plan.test_h) * HOUR_S
        sim = simulate(scenario, duration_s=total_s, seed=seed)
        per_hour = round(HOUR_S / sim.period_s)
        for n_h in plan.history_h:
            started = time.perf_counter()
            split = round(n_h * per_hour)
            end = split + round(plan.test_h * per_hour)
            fitted: dict[str, dict[str, Any]] = {}
            with tempfile.TemporaryDirectory(prefix="next-hours-") as tmp:
                for u in names:
                    history = sim.unit_data(u)[:split]
                    fitted[u] = {
                        role: train(
                            spec,
                            history,
                            sim.sensors,
                            f"{spec.kind}-{u}-{n_h:g}h",
                            Path(tmp),
                            sim.period_s,
                            seed,
                            plan.epochs,
                            plan.train_step,
                        )
                        for role, spec in specs.items()
                    }
            trained_s = time.perf_counter() - started
            units = [
                unit_entry(u, sim.sensors, sim.period_s, f["detector"], f["forecaster"]) for u, f in fitted.items()
            ]
            cfg = PlantwatchConfig.model_validate({"units": units, "scheduler": {"device": "cpu"}})
            models = {m.name: m for f in fitted.values() for m in f.values()}
            test = {u: sim.unit_data(u)[split:end] for u in names}
            result = run_backtest(cfg, models, csv_data(sim.timestamps[split:end], test), out_dir=None, batch_size=1024)
            margins = {u.name: u.sensor_health.envelope_margin for u in cfg.units}
            for u in names:
                figures = unit_figures(result, u, fitted[u], margins[u], test[u])
                manifests = {role: m.manifest for role, m in fitted[u].items()}
                runs.append(UnitRun(seed, u, n_h, manifests=manifests, **figures))
            mine = runs[-len(names) :]
            print(
                f"# seed {seed} N {n_h:g} h: alert time "
                + ", ".join(f"{r.unit} {100 * r.alert_share:.2f} % ({r.episodes} ep)" for r in mine)
                + f"; train {trained_s:.0f} s, backtest {result.wall_s:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    return runs


# --- small data -----------------------------------------------------------------------------------------------------
@dataclass
class SmallRun:
    period_s: float
    seed: int
    window: int
    rows: int
    sensors: int
    error: str | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    alert_share: float = math.nan
    episodes: int = 0
    critical: int = 0
    sensor_episodes: int = 0
    reported_outside: bool = False
    data_outside_share: float = math.nan
    test_h: float = 0.0


SMALL_ROWS = 500
SMALL_UNITS = 4
SMALL_TEST_H = 2.0
SMALL_GAP_H = 1.0  # the test starts this long after the training rows end
SMALL_WINDOWS = (30, 10)
SMALL_PERIODS = (1.0, 10.0)


def run_small(seeds: Sequence[int]) -> list[SmallRun]:
    out: list[SmallRun] = []
    spec = DETECTORS["lstm_ae"]
    for period in SMALL_PERIODS:
        for seed in seeds:
            names = [f"p{i}" for i in range(SMALL_UNITS)]
            raw: dict[str, Any] = {"name": f"small-{seed}", "profile": "reactor", "units": {"names": names}}
            if period != 1.0:
                raw.update(period_s=period, step_s=period)
            scenario = parse_scenario(raw)
            test_start = SMALL_ROWS + round(SMALL_GAP_H * HOUR_S / period)
            test_end = test_start + round(SMALL_TEST_H * HOUR_S / period)
            sim = simulate(scenario, duration_s=test_end * period, seed=seed)
            sensors = tuple(f"{u}_{s}" for u in names for s in sim.sensors)
            plant = np.concatenate([sim.unit_data(u) for u in names], axis=1)  # [T, 32]
            for window in SMALL_WINDOWS:
                run = SmallRun(period, seed, window, SMALL_ROWS, len(sensors))
                out.append(run)
                with tempfile.TemporaryDirectory(prefix="next-hours-small-") as tmp:
                    try:
                        history = plant[:SMALL_ROWS]
                        name = f"lstm_ae-w{window}"
                        model = train(spec, history, sensors, name, Path(tmp), period, seed, None, None, window=window)
                    except ValueError as exc:  # refused (too few rows, ...): that is an answer too
                        run.error = str(exc)
                        continue
                run.manifest = model.manifest
                entry = unit_entry("plant", sensors, period, model, None)
                cfg = PlantwatchConfig.model_validate({"units": [entry], "scheduler": {"device": "cpu"}})
                test = plant[test_start:test_end]
                result = run_backtest(
                    cfg, {model.name: model}, csv_data(sim.timestamps[test_start:test_end], {"plant": test})
                )
                margin = cfg.units[0].sensor_health.envelope_margin
                f = unit_figures(result, "plant", {"detector": model}, margin, test)
                run.alert_share, run.episodes, run.critical = f["alert_share"], f["episodes"], f["critical"]
                run.sensor_episodes, run.reported_outside = f["sensor_episodes"], f["reported_outside"]
                run.data_outside_share, run.test_h = f["data_outside_share"], f["days"] * 24
                print(
                    f"# small {period:g} s seed {seed} window {window}: alert time {100 * run.alert_share:.2f} %, "
                    f"{run.episodes} episodes, warnings {len(model.manifest['training']['warnings'])}",
                    file=sys.stderr,
                    flush=True,
                )
    return out


# --- tables ---------------------------------------------------------------------------------------------------------
def pct(x: float) -> str:
    return fmt(100 * x, 2)


def unit_meets(r: UnitRun) -> tuple[bool, str]:
    """The issue's target for one unit: (met, which way)."""
    per_day = r.episodes / r.days if r.days else math.nan
    quiet = r.alert_share <= TARGET_SHARE and per_day <= TARGET_EPISODES
    if quiet:
        return True, "quiet"
    if r.history_h < 24 and r.reported_outside and r.critical_share * 24 * r.days < CRITICAL_HOURS:
        return True, "outside envelope, no critical hours"
    return False, "no"


def mean_share(runs: Sequence[UnitRun], attr: str) -> float:
    days = sum(r.days for r in runs)
    return sum(getattr(r, attr) * r.days for r in runs) / days if days else math.nan


def threshold_summary(manifests: Sequence[dict[str, Any]]) -> dict[str, Any]:
    methods = Counter(m["threshold"]["method"] for m in manifests)
    holdout = [m["threshold"]["holdout"]["far"] for m in manifests if m["threshold"].get("holdout")]
    warnings = [m["training"]["warnings"] for m in manifests]
    return {
        "methods": ", ".join(f"{k} x{v}" for k, v in methods.most_common()),
        "supported": sum(1 for m in manifests if m["threshold"]["supported"]),
        "warned": sum(1 for w in warnings if w),
        "warnings": sum(len(w) for w in warnings),
        "holdout_far": float(np.median(holdout)) if holdout else math.nan,
        "n": len(manifests),
    }


def print_next_hours(runs: list[UnitRun], plan: Plan) -> None:
    hours = sorted({r.history_h for r in runs})
    print("\n### Next 24 h of normal operation after N h of history (all units; every alert is false)\n")
    print(
        "| N h | units | anomaly alert time % | inside-envelope episodes, % of time | "
        "outside-envelope episodes, % of time | anomaly episodes / unit-day (merged) | reconstruction | forecast | "
        "critical episodes / unit-day | "
        "critical alert time % | sensor episodes / unit-day | target | units meeting it | met |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n_h in hours:
        rs = [r for r in runs if r.history_h == n_h]
        days = sum(r.days for r in rs)
        share = mean_share(rs, "alert_share")
        per_day = sum(r.episodes for r in rs) / days
        meets = [unit_meets(r) for r in rs]
        if n_h >= 24:
            target = "<= 1 % and <= 1 episode / unit-day"
            met = share <= TARGET_SHARE and per_day <= TARGET_EPISODES
        else:
            target = "same, or outside envelope instead of critical alerts for hours"
            met = all(m for m, _ in meets)
        print(
            f"| {n_h:g} | {len(rs)} | {pct(share)} | {pct(mean_share(rs, 'inside_share'))} | "
            f"{pct(mean_share(rs, 'outside_share'))} | {fmt(per_day)} | "
            f"{fmt(sum(r.by_detector['reconstruction'] for r in rs) / days)} | "
            f"{fmt(sum(r.by_detector['forecast'] for r in rs) / days)} | {fmt(sum(r.critical for r in rs) / days)} | "
            f"{pct(mean_share(rs, 'critical_share'))} | {fmt(sum(r.sensor_episodes for r in rs) / days)} | "
            f"{target} | {sum(m for m, _ in meets)}/{len(rs)} | {'yes' if met else 'NO'} |"
        )

    print("\n### What train said, and the envelope (per N; units = models of that role)\n")
    print(
        "| N h | model | threshold method used | supported | units warned | warnings | median holdout FAR | "
        "units reported outside envelope (anomaly event) | units whose data left the envelope | "
        "time outside envelope % | sensors outside most |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n_h in hours:
        rs = [r for r in runs if r.history_h == n_h]
        sensors = Counter[str]()
        for r in rs:
            sensors.update(r.outside_sensors)
        top = ", ".join(s for s, _ in sensors.most_common(3)) or "-"
        for role in ("detector", "forecaster"):
            s = threshold_summary([r.manifests[role] for r in rs])
            env = (
                f"{sum(r.reported_outside for r in rs)}/{len(rs)} | "
                f"{sum(r.data_outside_share > 0 for r in rs)}/{len(rs)} | {pct(mean_share(rs, 'data_outside_share'))}"
                f" | {top}"
                if role == "detector"
                else "| | |"
            )
            kind = rs[0].manifests[role]["kind"]
            print(
                f"| {n_h:g} | {kind} ({role}) | {s['methods']} | {s['supported']}/{s['n']} | {s['warned']}/{s['n']} | "
                f"{s['warnings']} | {fmt(100 * s['holdout_far'], 3)} % | {env} |"
            )

    print("\n### Per unit\n")
    print(
        "| N h | unit | anomaly alert time % | episodes (rec / fc) | critical episodes | critical alert h | "
        "sensor episodes | reported outside | data outside envelope % | lstm_ae: method, supported, warnings | "
        "lstm: method, supported, warnings | target met |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n_h in hours:
        for r in (r for r in runs if r.history_h == n_h):
            cells = []
            for role in ("detector", "forecaster"):
                th = r.manifests[role]["threshold"]
                cells.append(f"{th['method']}, {th['supported']}, {len(r.manifests[role]['training']['warnings'])}")
            met, how = unit_meets(r)
            reasons = ", ".join(f"{k} {v}" for k, v in r.sensor_reasons.items())
            print(
                f"| {n_h:g} | {r.unit} | {pct(r.alert_share)} | {r.episodes} ({r.by_detector['reconstruction']} / "
                f"{r.by_detector['forecast']}) | {r.critical} | {fmt(r.critical_share * r.days * 24)} | "
                f"{r.sensor_episodes}{f' ({reasons})' if reasons else ''} | {'yes' if r.reported_outside else 'no'} | "
                f"{pct(r.data_outside_share)} | {cells[0]} | {cells[1]} | {how if met else 'NO'} |"
            )

    print("\n### Warnings of the first unit's models, per N (manifest training.warnings)\n")
    for n_h in hours:
        r = next(r for r in runs if r.history_h == n_h)
        for role in ("detector", "forecaster"):
            m = r.manifests[role]
            for w in m["training"]["warnings"] or ["(none)"]:
                print(f"- N {n_h:g} h, {r.unit}, {m['kind']}: {w}")
    print(
        f"\n(epochs {plan.epochs}, training stride {plan.train_step}, the same for every N. Critical alert time: "
        "while an anomaly episode stood at critical (to its next warning event or its resolution). Inside and "
        "outside shares can overlap: a unit's reconstruction and forecast episodes are merged within each class only.)"
    )


def print_small(runs: list[SmallRun]) -> None:
    print(
        f"\n### Small data: {SMALL_ROWS} rows of {SMALL_UNITS} x 8 = {SMALL_UNITS * 8} sensors (4 reactor units side "
        f"by side), default detector lstm_ae; test {SMALL_TEST_H:g} h of the same plant starting {SMALL_GAP_H:g} h "
        "after the training rows\n"
    )
    print(
        "| period s | history | seed | window | supported | method | warnings | anomaly alert time % | episodes | "
        "critical | sensor episodes | reported outside | data outside envelope % | target (<= 2 % or warned) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        history = f"{r.rows * r.period_s / 60:.0f} min"
        if r.error is not None:
            print(
                f"| {r.period_s:g} | {history} | {r.seed} | {r.window} | refused | - | - | - | - | - | - | - | - | "
                "refused |"
            )
            continue
        th = r.manifest["threshold"]
        warnings = r.manifest["training"]["warnings"]
        ok = r.alert_share <= SMALL_TARGET_SHARE or bool(warnings) or not th["supported"]
        how = "quiet" if r.alert_share <= SMALL_TARGET_SHARE else "warned" if ok else "NO"
        if r.alert_share <= SMALL_TARGET_SHARE and warnings:
            how = "quiet and warned"
        print(
            f"| {r.period_s:g} | {history} | {r.seed} | {r.window} | {th['supported']} | {th['method']} | "
            f"{len(warnings)} | {pct(r.alert_share)} | {r.episodes} | {r.critical} | {r.sensor_episodes} | "
            f"{'yes' if r.reported_outside else 'no'} | {pct(r.data_outside_share)} | {how} |"
        )
    print("\nWhat train said (first seed of each period and window):\n")
    seen: set[tuple[float, int]] = set()
    for r in runs:
        if (r.period_s, r.window) in seen:
            continue
        seen.add((r.period_s, r.window))
        if r.error is not None:
            print(f"- {r.period_s:g} s, window {r.window}, seed {r.seed}: refused: {r.error}")
            continue
        th = r.manifest["threshold"]
        split = r.manifest["training"]["figures"]["windows"]
        print(
            f"- {r.period_s:g} s, window {r.window}, seed {r.seed}: method {th['method']}, supported {th['supported']},"
            f" {th['n_calibration']} calibration windows, {split['train']} training / {split['validation']} "
            f"validation windows, holdout {th['holdout']['n'] if th.get('holdout') else 0} windows"
        )
        for w in r.manifest["training"]["warnings"] or ["(no warnings)"]:
            print(f"  - {w}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 seed, 3 epochs, stride 16 (under 4 min)")
    parser.add_argument("--small", action="store_true", help="only the small-data section")
    parser.add_argument("--seeds", type=int, help="number of seeds (default: 3 full, 1 quick)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.seeds is not None:
        plan = Plan(tuple(range(21, 21 + args.seeds)), plan.units, plan.history_h, plan.test_h, plan.epochs,
                    plan.train_step)  # fmt: skip
    import torch

    torch.set_num_threads(1)
    started = time.perf_counter()
    runs = [] if args.small else run_next_hours(plan)
    small = run_small(plan.seeds)
    mode = "small" if args.small else "quick" if args.quick else "full"
    print(f"\nquality_next_hours {mode}: command `{' '.join([sys.executable, *sys.argv])}`")
    if not args.small:
        print(
            f"plan: seeds {list(plan.seeds)}, {plan.units} fault-free reactor units per seed, N in "
            f"{[f'{h:g} h' for h in plan.history_h]}, test {plan.test_h:g} h after each N, "
            f"epochs {plan.epochs}, stride {plan.train_step}; lstm_ae window 30 hidden 32 latent 8, "
            "lstm window 30 hidden 32 1 layer; TrainConfig default calibration (pot, 1e-4 per window); "
            "config default alert policy"
        )
    print(f"machine: {machine()}; wall time {time.perf_counter() - started:.0f} s")
    if runs:
        print_next_hours(runs, plan)
    print_small(small)
    return 0


if __name__ == "__main__":
    sys.exit(main())
