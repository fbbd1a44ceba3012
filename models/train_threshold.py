"""The threshold step of training: calibration on the calibration blocks, the holdout check, the guards.

API (torch-free; the model is any models.model_api.ScoringModel)::

    record = calibrate_threshold(model, filled, usable, split, config, period_s)   # steps 6-7 of models/train.py
    scores = calibration_scores(model, filled, usable, part)   # a part scored as the service scores it
    holdout_check(scores, part, record), holdout_warning(holdout, target_far)
    apply_guards(record, scores), unsupported_message(record, rows, period_s)
    CalibrationUnsupported         # raised by the trainers with require_supported when the record says unsupported

The record is the manifest's ``threshold`` (method, value, resolve and critical levels, n_effective, supported,
needed rows, the holdout's FAR, warnings). The statistics (quantile, POT, what the data supports) are
models/calibration.py; this module applies them to a trained model's scores of a split's parts.

Apart from models/train.py because both trainers run it (the networks' train_model on a LoadedModel, the pca's
models/pca_train.py on a PcaDetector: the same code sets every kind's threshold), and it needs no torch.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from models.calibration import calibrate
from models.model_api import ScoringModel
from models.preprocessing import Split
from models.train_config import TrainConfig
from models.train_rows import Part, part_slices, raw_pairs


class CalibrationUnsupported(ValueError):
    """The data does not support the target false-alarm rate (raised only with ``require_supported``)."""


def calibrate_threshold(
    model: ScoringModel,
    filled: npt.NDArray[np.float64],
    usable: npt.NDArray[np.bool_],
    split: Split,
    config: TrainConfig,
    period_s: float,
) -> dict[str, Any]:
    """The threshold record: calibration on the calibration blocks, then the check on the holdout.

    ``needed_rows`` is rescaled from calibration scores to rows of history (the calibration part is a
    share of it), and the message says it in hours too.
    """
    scores = calibration_scores(model, filled, usable, split.calibration)
    record = calibrate(scores, config.calibration, config.target_far, window=model.window)
    record["calibration_rows"] = [[int(b.start), int(b.stop)] for b in split.calibration]
    if record["needed_rows"] is not None:
        rows_per_score = filled.shape[0] / record["n_calibration"]
        record["needed_rows"] = math.ceil(record["needed_rows"] * rows_per_score)
        record["message"] = unsupported_message(record, filled.shape[0], period_s)
        record["warnings"] = [record["message"]]
    record["holdout"] = None
    if not split.holdout and config.holdout_fraction > 0:
        record["warnings"].append(
            f"no holdout check: the newest {config.holdout_fraction:.0%} of the rows is shorter than a window"
        )
    if split.holdout:
        holdout_scores = calibration_scores(model, filled, usable, split.holdout)
        record["holdout"] = holdout_check(holdout_scores, split.holdout, record)
        warning = holdout_warning(record["holdout"], config.target_far)
        if warning:
            record["warnings"].append(warning)
        # The check judged the procedure; the threshold written is then set by the same procedure on every
        # held-out window (calibration and holdout): the newest rows are the most like what comes next.
        scores = np.concatenate([scores, holdout_scores])
        final = calibrate(scores, config.calibration, config.target_far, window=model.window)
        record["holdout"]["checked_value"] = record["value"]
        # n_calibration, n_effective and supported keep describing the calibration blocks the check judged.
        for key in ("value", "resolve_value", "critical_value", "method", "parameters"):
            record[key] = final[key]
        record["n_final"] = final["n_calibration"]  # windows the written threshold was set on
    apply_guards(record, scores)
    return record


# Far beyond the calibrated threshold in the units of the normal spread above the resolve level: critical.
CRITICAL_SPREADS = 2.0


def apply_guards(record: dict[str, Any], scores: npt.NDArray[np.float32]) -> None:
    """Floors the data demand when the tail fit cannot: a target the data cannot support is never set below
    the largest normal score seen (no held-out normal window may cross it), and a bounded tail (fitted shape
    < 0) cannot put the critical level just above the threshold: it is at least CRITICAL_SPREADS times the
    threshold's distance from the resolve level beyond it."""
    finite = scores[np.isfinite(scores)]
    if not record["supported"] and finite.size:
        observed_max = float(finite.max())
        if observed_max > record["value"]:
            record["value"] = observed_max
            record["parameters"]["floored_at_max"] = True
    value, resolve = record["value"], min(record["resolve_value"], record["value"])
    record["resolve_value"] = resolve
    record["critical_value"] = max(record["critical_value"], value + CRITICAL_SPREADS * (value - resolve), value)


def unsupported_message(record: dict[str, Any], rows: int, period_s: float) -> str:
    """One line: why the target is out of reach and how much normal data would reach it."""
    needed = int(record["needed_rows"])
    return (
        # The method named is the calibration blocks' alone: the threshold written is set again on them and the
        # holdout together, and `train` prints that one's method, which may differ (max_margin, then pot_moments).
        f"the calibration does not support target FAR {record['target_far']:g}: "
        f"{record['n_calibration']} calibration windows hold about {record['n_effective']:.0f} independent ones "
        f"(decorrelation {record['decorrelation_windows']} windows; alone they gave {record['method']}); "
        f"about {needed} rows "
        f"({needed * period_s / 3600.0:.1f} h) of normal data would be needed, {max(needed - rows, 0)} more "
        f"({max(needed - rows, 0) * period_s / 3600.0:.1f} h)"
    )


def holdout_check(scores: npt.NDArray[np.float32], part: Part, record: dict[str, Any]) -> dict[str, Any]:
    """The share of the holdout's windows (``scores``: the holdout scored by the calibration's code) above the
    threshold. ``rows``: the holdout's row ranges, ``[[start, stop], ...]`` (one per unit and piece)."""
    scores = scores[np.isfinite(scores)]
    n = int(scores.size)
    above = int(np.count_nonzero(scores > record["value"]))
    return {
        "rows": [[int(s.start), int(s.stop)] for s in part_slices(part)],
        "n": n,
        "exceedances": above,
        "far": above / n if n else None,
        # the calibration's decorrelation length: the holdout is too short to estimate its own reliably
        "n_effective": n / record["decorrelation_windows"],
    }


# The holdout FAR is "far above" the target past 10 x the target, and past 5 independent exceedances'
# worth (5 / n_effective), so that one chance excursion in a short holdout is not called a failure.
HOLDOUT_FAR_FACTOR = 10.0
HOLDOUT_MIN_EXCEEDANCES = 5.0


def holdout_warning(holdout: dict[str, Any], target_far: float) -> str | None:
    """A warning when the holdout's measured FAR is far above the target (see HOLDOUT_FAR_FACTOR)."""
    far = holdout["far"]
    if far is None:
        return "the holdout has no scored window: the threshold is not checked"
    limit = max(HOLDOUT_FAR_FACTOR * target_far, HOLDOUT_MIN_EXCEEDANCES / max(holdout["n_effective"], 1e-9))
    if far <= limit:
        return None
    return (
        f"on the holdout (the newest rows, not used for training or calibration) {far:.2%} of "
        f"{holdout['n']} windows are above the threshold, target {target_far:g}: the newest data differ "
        "from the history the threshold was set on (drift, a change of operation, too short a history)"
    )


def calibration_scores(
    model: ScoringModel, filled: npt.NDArray[np.float64], usable: npt.NDArray[np.bool_], part: Part
) -> npt.NDArray[np.float32]:
    """Scores of a model on one part (a slice, or blocks) of (filled) raw data, as the service computes them.

    Detectors: ``infer(window).scores`` for every window. Forecasters: ``residual_score`` of the
    one-step-ahead forecast of every row that has a full window before it. In time order, blocks one
    after the other; no window spans two blocks.
    """
    if model.role == "detector":
        windows = raw_pairs(filled, usable, part, model.window)
        scores = model.infer(windows).scores
        assert scores is not None
        return scores
    spans = raw_pairs(filled, usable, part, model.window + 1)
    result = model.infer(spans[:, : model.window])
    assert result.forecasts is not None
    score, _ = model.residual_score(result.forecasts[:, 0], spans[:, model.window])
    return score
