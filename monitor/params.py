"""Config -> the pipeline's parameter records, one conversion shared by the service and the backtest.

The pipeline modules (buffers, scoring, alerts) take plain parameter records and never import the config, so
they stay testable on their own; this module is the one place that maps config fields onto them.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import TYPE_CHECKING

from monitor.alerts.policy import AlertPolicy
from monitor.buffers.unit_spec import UnitSpec
from monitor.config import PlantwatchConfig
from monitor.scoring_records import UnitModels, required_window_rows
from monitor.sensor_health import HealthSpec
from monitor.thresholds import AdaptPolicy

if TYPE_CHECKING:
    from models.model_api import ScoringModel


def specs_from_config(
    cfg: PlantwatchConfig, models: Mapping[str, ScoringModel], refused_shadows: Set[tuple[str, str]] = frozenset()
) -> tuple[dict[str, UnitSpec], dict[str, AlertPolicy], dict[str, UnitModels]]:
    """The pipeline's parameter records for every configured unit.

    ``refused_shadows``: (unit, role) of shadow candidates that did not load (monitor.startup.load_shadows):
    left out."""
    specs: dict[str, UnitSpec] = {}
    policies: dict[str, AlertPolicy] = {}
    unit_models: dict[str, UnitModels] = {}
    for u in cfg.units:
        h = u.sensor_health
        health = None
        if h.enabled:
            health = HealthSpec(
                silent=h.silent,
                stuck=h.stuck,
                stuck_rows=h.stuck_rows,
                stuck_std_ratio=h.stuck_std_ratio,
                stuck_constant=h.stuck_constant,
                spikes=h.spikes,
                spike_k=h.spike_k,
                out_of_range=h.out_of_range,
                limits={s: (lim.min, lim.max) for s, lim in u.limits.items()},
                envelope_range_k=h.envelope_range_k,
            )
        shadows = {role: ref.name for role, ref in u.shadow_refs().items() if (u.name, role) not in refused_shadows}
        um = UnitModels(
            sensors=tuple(u.sensors),
            period_s=u.period_s,
            detector=u.detector.name,
            forecaster=u.forecaster.name if u.forecaster is not None else None,
            health=health,
            envelope_margin=h.envelope_margin,
            shadow_detector=shadows.get("detector"),
            shadow_forecaster=shadows.get("forecaster"),
        )
        unit_models[u.name] = um
        specs[u.name] = UnitSpec(
            sensors=tuple(u.sensors),
            period_s=u.period_s,
            origin_s=u.row_origin_s,
            max_lateness_s=u.max_lateness_s,
            max_gap_periods=u.max_gap_periods,
            window_rows=required_window_rows(um, models),
            silent_rows=u.alerts.fire_window,  # a long silence yields enough records for k of n to fire
            max_clock_skew_s=cfg.limits.max_clock_skew_s,  # the clock guard (monitor.timeline)
        )
        a = u.alerts
        policies[u.name] = AlertPolicy(
            fire_hits=a.fire_hits,
            fire_window=a.fire_window,
            resolve_hits=a.resolve_hits,
            resolve_ratio=a.resolve_ratio,
            min_duration_s=a.min_duration_s,
            renotify_s=a.renotify_s,
            critical_ratio=a.critical_ratio,
            fire_evidence=a.fire_evidence,
            outside_envelope=a.outside_envelope,
            adapt=AdaptPolicy(
                enabled=a.adaptive.enabled,
                target_far=a.adaptive.target_far,
                max_peaks=a.adaptive.max_peaks,
                min_peaks=a.adaptive.min_peaks,
                max_drift_per_hour=a.adaptive.max_drift_per_hour,
                floor=a.adaptive.floor,
                ceiling=a.adaptive.ceiling,
                guard_s=a.adaptive.guard_s,
            ),
        )
    return specs, policies, unit_models
