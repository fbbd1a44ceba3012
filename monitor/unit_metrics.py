"""The per-unit metric series of the service in preallocated numpy arrays: one UnitTable, collected at scrape time.

API (the table is ``Metrics.per_unit``, monitor/metrics.py; the scorer process builds one on shared memory)::

    table = UnitTable(units={"R1": ("a", "b")}, horizons=(1, 10))
    i = table.index["R1"]                             # unit position, resolved once (KeyError: not configured)
    table.count_received(i)                           # buffer thread: a readings message placed
    table.set_fill(i, 0.5); table.set_sensor_values(i, row)   # buffer thread; row [S], config sensor order
    table.set_scores(out.scores); table.set_forecasts(out.forecasts)   # scheduler thread, per ScoringOutput
    table.set_alert_active(i, "forecast", True); table.count_alert_fired(i, "forecast")
    table.score[i, DETECTOR_INDEX["forecast"]]        # the arrays themselves, for reading (tests, diagnostics)

Per-unit series (received, buffer fill, score, threshold, sensor error, sensor value, forecast value, alerts
active and fired, outside the training envelope) live in preallocated float64 arrays, which the registry collects
at scrape time (prometheus_client's custom-collector pattern): no Python object, lock or ``.set()`` per series.
Names, HELP, types, labels and values are what one prometheus_client child per series gave, ``_created`` included.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import numpy.typing as npt
from prometheus_client import metrics as prometheus_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.samples import Sample

from monitor.messages import DETECTORS, Forecast, Score

DETECTOR_INDEX: dict[str, int] = {d: i for i, d in enumerate(DETECTORS)}


class _Family:
    """One exported metric family: which array elements it exports, with their labels built once.

    Every scrape's Samples share these label dicts (the exposition and get_sample_value only read them): about
    7.5 MiB at 1,000 units x 8 sensors, against one dict per sample built again at every scrape."""

    __slots__ = ("array", "counter", "doc", "flat", "label_names", "labels", "name")

    def __init__(
        self,
        name: str,
        doc: str,
        counter: bool,
        array: npt.NDArray[np.float64],
        label_names: tuple[str, ...],
        series: list[tuple[int, dict[str, str]]],  # (flat index into the array, labels), in exposition order
    ) -> None:
        self.name = name
        self.doc = doc
        self.counter = counter
        self.array = array.reshape(-1)  # a view: writes to the table's array show here
        self.label_names = label_names
        self.flat = np.array([i for i, _ in series], dtype=np.intp)
        self.labels = tuple(labels for _, labels in series)

    def empty(self) -> Metric:
        cls = CounterMetricFamily if self.counter else GaugeMetricFamily
        return cls(self.name, self.doc, labels=self.label_names)

    def collect(self, created: float | None) -> Metric:
        family = self.empty()
        values = self.array.take(self.flat).tolist()  # one copy per family, then Python floats
        if not self.counter:
            family.samples = [Sample(self.name, labels, v) for labels, v in zip(self.labels, values, strict=True)]
            return family
        total, made = self.name + "_total", self.name + "_created"
        samples: list[Sample] = []
        for labels, v in zip(self.labels, values, strict=True):  # per series: _total, then _created, as Counter does
            samples.append(Sample(total, labels, v))
            if created is not None:
                samples.append(Sample(made, labels, created))
        family.samples = samples
        return family


class UnitTable:
    """Every per-unit series in preallocated numpy arrays, exported by one collector built at scrape time.

    Indices: unit by ``index[unit]`` (config order), sensor by its position in the unit's config order (arrays
    are as wide as the unit with most sensors; the pad columns are never exported), detector by DETECTORS,
    horizon step by ``steps`` (ascending). Every series exists from the start, value 0, and counters have a
    ``_created`` sample (the table's construction time) as prometheus_client's own counters do.

    Threading, without a lock: each array has one writer thread. ``received``, ``fill`` and ``sensor_value``:
    the buffer thread; ``score``, ``threshold``, ``sensor_error``,
    ``alerts_active``, ``alerts_fired`` and ``forecast_value``: the scheduler thread (``restore`` at start, before
    it runs). A scrape (HTTP thread) copies each family's elements with one ``take``. The arrays are never
    reallocated, and a float64 element is written whole (under the GIL, and as one aligned 8-byte store anyway),
    so a reader sees each element's old or new value, never a torn one; a counter's one writer does its
    read-modify-write alone, so it never loses an increment and never goes back. A scrape may show part of a
    batch's rows new and the rest old (or a unit's score from one row, its threshold from the next): acceptable
    for gauges that are overwritten every row.
    """

    def __init__(
        self,
        units: Mapping[str, Sequence[str]],
        horizons: Iterable[int] = (),
        zeros: Callable[[tuple[int, ...]], npt.NDArray[np.float64]] = np.zeros,
        exported: bool = True,
    ) -> None:
        self.units = tuple(units)
        self.index = {unit: i for i, unit in enumerate(self.units)}
        self.sensors = {unit: tuple(sensors) for unit, sensors in units.items()}  # config order
        self.steps = tuple(sorted(set(horizons)))
        n_det, n_steps = len(DETECTORS), len(self.steps)
        width = max((len(s) for s in self.sensors.values()), default=0)
        self._width = width
        self.created = time.time()
        # ``zeros`` makes every array: np.zeros, or views on a shared-memory block (monitor/merged_metrics.py: the
        # scorer process writes its arrays into the block the front process exports), in the order of ``array_shapes``.
        shapes = self.array_shapes(units, self.steps)
        # Written by the buffer thread (received, fill, sensor_value).
        self.received = zeros(shapes["received"])
        self.fill = zeros(shapes["fill"])
        self.sensor_value = zeros(shapes["sensor_value"])
        # Scheduler thread.
        self.score = zeros(shapes["score"])
        self.threshold = zeros(shapes["threshold"])
        self.calibrated_threshold = zeros(shapes["calibrated_threshold"])
        self.normalized = zeros(shapes["normalized"])
        self.sensor_error = zeros(shapes["sensor_error"])
        self.alerts_active = zeros(shapes["alerts_active"])
        self.alerts_fired = zeros(shapes["alerts_fired"])
        self.forecast_value = zeros(shapes["forecast_value"])
        # 1 while the unit's latest model score (any detector but "sensor") names a sensor outside the envelope.
        self.outside_envelope = zeros(shapes["outside_envelope"])
        self._outside = zeros(shapes["_outside"])  # per detector, latest score; not exported
        self._model_detectors = np.array([d != "sensor" for d in DETECTORS])
        # Per unit: its sensor names padded to the width with None (never a key: their error reads as NaN).
        self._columns = [s + (None,) * (width - len(s)) for s in self.sensors.values()]
        self._step_rows = np.array(self.steps, dtype=np.intp) - 1  # forecast rows of the exported steps

        if not exported:  # the scorer process's table: the front's, on the same shared arrays, is the exported one
            self._families: tuple[_Family, ...] = ()
            return
        u_labels = [{"unit": u} for u in self.units]
        ud_labels = [{"unit": u, "detector": d} for u in self.units for d in DETECTORS]
        per_unit = [(i, labels) for i, labels in enumerate(u_labels)]
        per_detector = [(i, labels) for i, labels in enumerate(ud_labels)]
        errors, values, forecasts = [], [], []
        horizon_names = [str(h) for h in self.steps]
        for i, (unit, sensors) in enumerate(self.sensors.items()):
            for d, detector in enumerate(DETECTORS):
                base = (i * n_det + d) * width
                errors += [(base + j, {"unit": unit, "detector": detector, "sensor": s}) for j, s in enumerate(sensors)]
            values += [(i * width + j, {"unit": unit, "sensor": s}) for j, s in enumerate(sensors)]
            for j, s in enumerate(sensors):
                base = (i * width + j) * n_steps
                forecasts += [
                    (base + k, {"unit": unit, "sensor": s, "horizon": h}) for k, h in enumerate(horizon_names)
                ]
        self._families = (
            _Family(
                "plantwatch_readings_received",
                "Readings messages accepted: at least one value placed in the unit's buffer.",
                True,
                self.received,
                ("unit",),
                per_unit,
            ),
            _Family(
                "plantwatch_anomaly_score",
                "Latest anomaly score.",
                False,
                self.score,
                ("unit", "detector"),
                per_detector,
            ),
            _Family(
                "plantwatch_anomaly_threshold",
                "Threshold in force: the calibrated one, adapted online to normal scores.",
                False,
                self.threshold,
                ("unit", "detector"),
                per_detector,
            ),
            _Family(
                "plantwatch_anomaly_threshold_calibrated",
                "Threshold the model was calibrated with at training.",
                False,
                self.calibrated_threshold,
                ("unit", "detector"),
                per_detector,
            ),
            _Family(
                "plantwatch_anomaly_score_normalized",
                "Latest score / threshold in force: above 1 is anomalous, for every detector alike.",
                False,
                self.normalized,
                ("unit", "detector"),
                per_detector,
            ),
            _Family(
                "plantwatch_sensor_error",
                "Latest per-sensor contribution to the anomaly score.",
                False,
                self.sensor_error,
                ("unit", "detector", "sensor"),
                errors,
            ),
            _Family(
                "plantwatch_sensor_value",
                "Latest aligned reading, raw sensor units: the newest row of the unit's last window "
                "(forecast vs actual).",
                False,
                self.sensor_value,
                ("unit", "sensor"),
                values,
            ),
            _Family(
                "plantwatch_forecast_value",
                "Latest forecast, raw sensor units, `horizon` periods after the newest row.",
                False,
                self.forecast_value,
                ("unit", "sensor", "horizon"),
                forecasts,
            ),
            _Family(
                "plantwatch_alerts_fired",
                "Alert episodes fired.",
                True,
                self.alerts_fired,
                ("unit", "detector"),
                per_detector,
            ),
            _Family(
                "plantwatch_alerts_active",
                "1 while an alert is firing.",
                False,
                self.alerts_active,
                ("unit", "detector"),
                per_detector,
            ),
            _Family(
                "plantwatch_outside_envelope",
                "1 while the unit's latest model score has a sensor outside the model's training envelope.",
                False,
                self.outside_envelope,
                ("unit",),
                per_unit,
            ),
            _Family(
                "plantwatch_buffer_fill_ratio",
                "Share of the unit's ring buffer holding rows.",
                False,
                self.fill,
                ("unit",),
                per_unit,
            ),
        )

    # --- writers; ``i`` is ``index[unit]``, resolved once by the caller where it can be ---

    def count_received(self, i: int) -> None:
        self.received[i] += 1.0

    def set_fill(self, i: int, ratio: float) -> None:
        self.fill[i] = ratio

    def set_sensor_values(self, i: int, row: npt.ArrayLike) -> None:
        """The unit's newest aligned row, sensors in config order."""
        row = np.asarray(row)
        self.sensor_value[i, : row.shape[0]] = row

    def set_scores(self, scores: Sequence[Score], in_force: Sequence[float] | None = None) -> None:
        """Score, thresholds, per-sensor errors and outside-envelope flag of one batch's Scores; the last Score of a
        (unit, detector) wins. ``in_force``: the threshold each Score was judged against (the alert stage's adapted
        one); None: the Score's calibrated threshold.

        Sensors a Score does not name keep their value; names the unit does not have are ignored."""
        if not scores:
            return
        n_det, index, columns = len(DETECTORS), self.index, self._columns
        keys = np.array([index[s.unit] * n_det + DETECTOR_INDEX[s.detector] for s in scores], dtype=np.intp)
        values = np.array([(s.score, s.threshold, 1.0 if s.outside_envelope else 0.0) for s in scores], np.float64)
        force = values[:, 1] if in_force is None else np.asarray(in_force, dtype=np.float64)
        errors = np.array(
            [[s.sensor_errors.get(c, math.nan) for c in columns[index[s.unit]]] for s in scores],  # type: ignore[arg-type]
            dtype=np.float64,
        ).reshape(len(scores), self._width)
        # Repeated keys: numpy does not promise which of several writes to one element wins, so keep the last.
        _, first_from_end = np.unique(keys[::-1], return_index=True)
        last = len(keys) - 1 - first_from_end
        keys, values, errors, force = keys[last], values[last], errors[last], force[last]
        self.score.reshape(-1)[keys] = values[:, 0]
        self.threshold.reshape(-1)[keys] = force
        self.calibrated_threshold.reshape(-1)[keys] = values[:, 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            self.normalized.reshape(-1)[keys] = np.where(force > 0, values[:, 0] / force, math.nan)
        flat_errors = self.sensor_error.reshape(-1, self._width)
        flat_errors[keys] = np.where(np.isnan(errors), flat_errors[keys], errors)
        self._outside.reshape(-1)[keys] = values[:, 2]
        touched = np.unique(keys // n_det)
        self.outside_envelope[touched] = self._outside[touched][:, self._model_detectors].max(axis=1)

    def set_forecasts(self, forecasts: Sequence[Forecast]) -> None:
        """Each Forecast's values ``[H, S]`` (sensors in config order) at the exported steps up to its H.

        The last Forecast of a unit wins; one vectorised assignment per forecast shape."""
        latest = {self.index[f.unit]: f.values for f in forecasts}
        by_shape: dict[tuple[int, ...], tuple[list[int], list[npt.NDArray[np.float32]]]] = {}
        for i, values in latest.items():
            rows, arrays = by_shape.setdefault(values.shape, ([], []))
            rows.append(i)
            arrays.append(values)
        for (horizon, n_sensors), (rows, arrays) in by_shape.items():
            steps = self._step_rows[self._step_rows < horizon]
            stacked = np.stack(arrays)[:, steps, :]  # [N, steps, S]
            self.forecast_value[np.array(rows, dtype=np.intp), :n_sensors, : len(steps)] = stacked.transpose(0, 2, 1)

    def set_alert_active(self, i: int, detector: str, active: bool) -> None:
        self.alerts_active[i, DETECTOR_INDEX[detector]] = 1.0 if active else 0.0

    def count_alert_fired(self, i: int, detector: str) -> None:
        self.alerts_fired[i, DETECTOR_INDEX[detector]] += 1.0

    @staticmethod
    def array_shapes(units: Mapping[str, Sequence[str]], horizons: Iterable[int] = ()) -> dict[str, tuple[int, ...]]:
        """The table's float64 arrays and their shapes, in allocation order (what a shared block must hold)."""
        n_units, n_det, n_steps = len(units), len(DETECTORS), len(set(horizons))
        width = max((len(s) for s in units.values()), default=0)
        return {
            "received": (n_units,),
            "fill": (n_units,),
            "sensor_value": (n_units, width),
            "score": (n_units, n_det),
            "threshold": (n_units, n_det),
            "calibrated_threshold": (n_units, n_det),
            "normalized": (n_units, n_det),
            "sensor_error": (n_units, n_det, width),
            "alerts_active": (n_units, n_det),
            "alerts_fired": (n_units, n_det),
            "forecast_value": (n_units, width, n_steps),
            "outside_envelope": (n_units,),
            "_outside": (n_units, n_det),
        }

    # --- the prometheus_client collector protocol ---

    def describe(self) -> Iterator[Metric]:
        """The families without samples: lets the registry refuse a second metric of one of these names."""
        for family in self._families:
            yield family.empty()

    def collect(self) -> Iterator[Metric]:
        # prometheus_client's switch for the `_created` series (PROMETHEUS_DISABLE_CREATED_SERIES,
        # disable_created_metrics()), read as its own counters read it: at every scrape.
        created = self.created if getattr(prometheus_metrics, "_use_created", True) else None
        for family in self._families:
            yield family.collect(created)
