"""Fault and abuse benchmark: hostile input, hostile artifacts, hostile clocks, kills and a soak, each counted exactly.

    .venv/bin/python -m benchmarks.faults                      # every section; the soak runs 30 minutes
    .venv/bin/python -m benchmarks.faults --quick              # smaller corpus, every 4th artifact at start, 2 min soak
    .venv/bin/python -m benchmarks.faults --sections payloads,clocks --json out.json

Every section runs `plantwatch run` as a subprocess against a private mosquitto (the kit's, tests/kit/) with
small models trained once (cached under --workdir), and reads the service's own counters from /metrics. The
publisher and the score recorder run in this process (paho threads); the service has its own GIL.

Sections and what they count:
- payloads: a corpus of hostile messages (every reason the parser and the buffers have, RELIABILITY.md B1-B12 and
  G1-G2) interleaved with two genuine units' rows. Sent per category against the service's
  readings_rejected_total{reason}; genuine messages received; windows scored; received + rejected == sent.
- artifacts: models/hostile.py's corpus. At start: `plantwatch run` must exit 2 with one line (a crash is any other
  exit, a traceback, or a hang). On SIGHUP: each case written over the directory a running service loads; the
  service must stay up, count model_reloads{result="error"} and keep scoring.
- clocks: a live 1 Hz stream with readings stamped +100 s and +110 s ahead, and a fresh unit whose first reading
  says ts = 1.0: genuine readings refused (must be 0), readings refused as `clock`, gap windows.
- broker_kill9: a live stream while the broker is killed (-9) and restarted on its port (no persistence): readings
  sent, received, lost in the broker, duplicated; seconds from the broker's restart to the next score.
- service_kill9: a live stream while the service is killed (-9) and restarted, for several `state.marks_every_s`:
  readings lost, windows missing or scored twice, seconds from ready to the first score.
- replay: a fresh service under live load gets 1,004 windows of one unit published as fast as the broker takes
  them (historical event times): windows scored versus skipped as backlog.
- journal_scale: a restart's replay at --journal-units units (a journal of every unit's ring span), in process.
- soak: live load with a trickle of hostile messages for --soak-minutes: RSS, open fds and threads per minute.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from benchmarks._harness import SENSORS, _Client, _payload, config_dict, machine, normal_signal, train_artifacts
from tests.kit import Broker, SpawnedService, wait_until

WINDOW = 20
PREFIX = "flt"


# --- the pieces every section uses ---------------------------------------------------------------------------


class ScoreRecorder:
    """Subscribes to the service's scores topic: how often each (unit, row ts) was scored, and when."""

    def __init__(self, broker: Broker) -> None:
        self.counts: Counter[tuple[str, float]] = Counter()
        self.arrivals: list[tuple[float, str, float]] = []  # (arrival time, unit, row ts)
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"rec-{uuid.uuid4().hex[:8]}")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{PREFIX}/pw/scores/#", qos=0)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        if not subscribed.wait(15):
            raise RuntimeError("score recorder could not subscribe")

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        body = json.loads(msg.payload)
        with self._lock:
            self.counts[(body["unit"], float(body["ts"]))] += 1
            self.arrivals.append((time.time(), body["unit"], float(body["ts"])))

    def first_after(self, t: float) -> float:
        with self._lock:
            return min((a for a, _, _ in self.arrivals if a >= t), default=math.nan)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class LivePublisher:
    """One `readings` message per unit every second, event time = the tick (a thread; QoS 1, reconnects)."""

    def __init__(self, broker: Broker, units: list[str], seed: int = 0) -> None:
        self.client = _Client(broker.host, broker.port, qos=1, inflight=1000)
        self.units = units
        self.phases = np.asarray(np.arange(len(units)) * 7.31 % 60.0, dtype=np.float64)
        self.sent = 0
        self.ticks: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.seed = seed

    def row_payload(self, ts: float, u: int) -> bytes:
        return _payload(ts, normal_signal(np.array([ts]), self.phases[u : u + 1], seed=int(ts) % 100000)[0, 0])

    def publish_tick(self, ts: float) -> None:
        values = normal_signal(np.array([ts]), self.phases, seed=int(ts) % 100000)[0]
        for u, unit in enumerate(self.units):
            self.client.publish(f"{PREFIX}/plant/{unit}/readings", _payload(ts, values[u]))
            self.sent += 1
        self.ticks.append(ts)

    def backfill(self, rows: int, first_tick: float) -> None:
        """``rows`` rows before ``first_tick`` as fast as the broker takes them (fills the windows)."""
        for k in range(rows, 0, -1):
            self.publish_tick(first_tick - k)

    def run(self, seconds: float, first_tick: float, hook: Callable[[int, float], None] | None = None) -> None:
        def body() -> None:
            for i in range(int(seconds)):
                tick = first_tick + i
                delay = tick - time.time()
                if delay > 0 and self._stop.wait(delay):
                    return
                self.publish_tick(tick)
                if hook is not None:
                    hook(i, tick)

        self._thread = threading.Thread(target=body, name="live-publisher", daemon=True)
        self._thread.start()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()
        self.client.drain(60)

    def close(self) -> None:
        self._stop.set()
        self.join()
        self.client.close()


class Bench:
    def __init__(self, workdir: Path, quick: bool) -> None:
        self.workdir = workdir
        self.quick = quick
        art = workdir / "artifacts"
        art.mkdir(parents=True, exist_ok=True)
        self.artifacts = train_artifacts(art, window=WINDOW, epochs=1, rows=1500)

    def config(self, units: list[str], **sections: Any) -> dict[str, Any]:
        data = config_dict(self.broker, self.artifacts, units, prefix=PREFIX, **sections)
        data["mqtt"]["topics"]["sensor"] = f"{PREFIX}/plant/{{unit}}/{{sensor}}"
        data["mqtt"]["reconnect_min_s"] = 1
        data["mqtt"]["reconnect_max_s"] = 2
        return data

    @contextmanager
    def broker_running(self) -> Iterator[Broker]:
        workdir = Path(tempfile.mkdtemp(prefix="pw-faults-broker-", dir=self.workdir))
        self.broker = Broker(workdir, verbose_log=False).start()
        try:
            yield self.broker
        finally:
            self.broker.stop()


def live_start() -> float:
    return float(math.ceil(time.time()) + 1)


# --- payloads --------------------------------------------------------------------------------------------------


def hostile_corpus(n: int, t_now: float) -> list[tuple[str, str, bytes]]:
    """``n`` hostile messages, (expected reason, topic, payload), cycling through every case. Cases that depend on
    the genuine stream (late, duplicate, clock) are made by ``payloads`` itself."""
    good = {s: 1.0 for s in SENSORS}
    t = f"{PREFIX}/plant/G1/readings"
    sensor_topic = f"{PREFIX}/plant/G1/{SENSORS[0]}"

    def readings(values: Any, ts: Any = t_now, **extra: Any) -> bytes:
        return json.dumps({"ts": ts, "values": values, **extra}).encode()

    def raw_value(literal: str) -> bytes:
        return f'{{"ts": {t_now!r}, "values": {{"{SENSORS[0]}": {literal}}}}}'.encode()

    cases: list[tuple[str, str, bytes]] = [
        ("malformed", t, b"{oops"),
        ("malformed", t, b"\xff\xfe\x00"),
        ("malformed", t, b""),
        ("malformed", t, b"[1, 2]"),
        ("malformed", t, b"[" * 60_000),  # RecursionError inside the decoder, under the size limit
        ("malformed", t, json.dumps({"ts": t_now}).encode()),  # no values
        ("malformed", t, json.dumps({"values": [1, 2]}).encode()),
        ("malformed", t, raw_value("1" * 5000)),  # beyond Python's int-string limit
        ("malformed", sensor_topic, b"[1]"),
        ("too_large", t, b" " * 70_000),
        ("too_large", t, b"[" * 100_000),
        ("non_finite", t, raw_value("NaN")),
        ("non_finite", t, raw_value("Infinity")),
        ("non_finite", t, raw_value("-Infinity")),
        ("non_finite", t, raw_value("1e999")),
        ("non_finite", t, raw_value("1e39")),
        ("non_finite", t, raw_value("3.5e38")),
        ("non_finite", t, raw_value("-1e39")),
        ("non_finite", t, raw_value("1e300")),
        ("non_finite", sensor_topic, b"1e39"),
        ("type", t, readings({**good, SENSORS[0]: "1.0"})),
        ("type", t, readings({**good, SENSORS[0]: True})),
        ("type", t, readings({**good, SENSORS[0]: None})),
        ("type", t, readings({**good, SENSORS[0]: [1]})),
        ("type", t, readings({**good, SENSORS[0]: {"v": 1}})),
        ("type", sensor_topic, b'"12.3"'),
        ("type", sensor_topic, b"true"),
        ("schema", t, readings(good, ts="2026-12-01T00:00:00")),
        ("schema", t, readings(good, ts="yesterday")),
        ("schema", t, readings(good, ts=-5)),
        ("schema", t, readings(good, ts=[1])),
        ("schema", t, readings(good, ts=True)),
        ("schema", t, readings({})),
        ("unknown_sensor", t, readings({**good, "zz": 1.0})),
        ("unknown_sensor", f"{PREFIX}/plant/G1/zz", b"1.0"),
        ("future", t, readings(good, ts=t_now + 1e6)),
        ("future", t, readings(good, ts=t_now + 3600)),
    ]
    out: list[tuple[str, str, bytes]] = []
    rng = np.random.default_rng(7)
    while len(out) < n:
        for case in cases:
            out.append(case)
        # unknown units: random ids, long ids, odd characters (never a label, a path or a topic of ours)
        unit = rng.choice([uuid.uuid4().hex, "x" * 200, "réacteur-ü", "..", "a b"])
        out.append(("unknown_unit", f"{PREFIX}/plant/{unit}/readings", readings(good)))
    return out[:n]


def payloads(bench: Bench, n_hostile: int) -> dict[str, Any]:
    rows = 300 if bench.quick else 1000
    with bench.broker_running() as broker:
        svc = SpawnedService(bench.config(["G1", "G2"]), bench.workdir, "payloads").start()
        pub = _Client(broker.host, broker.port, qos=1, inflight=200)
        t0 = live_start() - rows - 10  # recent history: the genuine rows' event times end before now
        corpus = hostile_corpus(n_hostile, t0 + rows)
        expected: Counter[str] = Counter()
        per_row = math.ceil(len(corpus) / rows)
        lives = LivePublisher(broker, ["G1", "G2"])
        started = time.perf_counter()
        sent = 0
        for k in range(rows):
            ts = t0 + k
            for u, unit in enumerate(("G1", "G2")):
                pub.publish(f"{PREFIX}/plant/{unit}/readings", lives.row_payload(ts, u))
                sent += 1
            for reason, topic, payload in corpus[k * per_row : (k + 1) * per_row]:
                pub.publish(topic, payload)
                expected[reason] += 1
                sent += 1
            # The stream-dependent cases, once every ten rows: a row again (QoS 1 redelivery), a row older than the
            # ring, and a reading 100 s ahead of the unit's cadence (inside max_clock_skew_s).
            if k >= 10 and k % 10 == 0:
                for reason, payload in (
                    ("duplicate", lives.row_payload(ts - 3, 0)),
                    ("late", lives.row_payload(ts - 500 if k >= 500 else t0 - 500, 0)),
                    ("clock", lives.row_payload(ts + 100, 0)),
                ):
                    pub.publish(f"{PREFIX}/plant/G1/readings", payload)
                    expected[reason] += 1
                    sent += 1
        pub.drain(120)
        genuine = 2 * rows

        def counted() -> float:
            samples = svc.scrape()
            return sum(samples.total(f"plantwatch_readings_{what}_total") for what in ("rejected", "received"))

        wait_until(lambda: counted() >= sent, 120, 0.5)
        time.sleep(1.0)  # the last rows' windows
        rejected = svc.scrape().by_label("plantwatch_readings_rejected_total", "reason")
        result = {
            "sent": sent,
            "genuine_sent": genuine,
            "hostile_sent": sent - genuine,
            "seconds": round(time.perf_counter() - started, 1),
            "received": svc.metric("plantwatch_readings_received_total"),
            "rejected_by_reason": {r: int(v) for r, v in rejected.items() if v},
            "expected_by_reason": dict(expected),
            "mismatched_reasons": {
                r: {"expected": expected.get(r, 0), "counted": int(rejected.get(r, 0))}
                for r in set(expected) | set(rejected)
                if expected.get(r, 0) != int(rejected.get(r, 0))
            },
            "accounted": counted() == sent,
            "windows_scored": svc.metric("plantwatch_windows_scored_total", detector="reconstruction"),
            "windows_expected": 2 * (rows - WINDOW + 1),
            "stage_errors": svc.scrape().total("plantwatch_stage_errors_total"),
            "alive": svc.alive() and svc.ready(),
        }
        pub.close()
        svc.stop()
    return result


# --- artifacts -------------------------------------------------------------------------------------------------


def artifacts(bench: Bench) -> dict[str, Any]:
    from models.hostile import CASE_NAMES, build_case

    at_start: dict[str, Any] = {"cases": 0, "exit_2": 0, "crashes": [], "traceback": 0}
    start_cases = CASE_NAMES[::4] if bench.quick else CASE_NAMES
    with bench.broker_running():
        for case in start_cases:
            det = build_case(case, bench.artifacts["det"], bench.workdir / "hostile" / case)
            data = bench.config(["A1"])
            data["units"][0]["detector"]["artifact"] = str(det)
            cfg = bench.workdir / "hostile" / f"{case}.yaml"
            cfg.write_text(yaml.safe_dump(data))
            try:
                proc = subprocess.run(
                    [sys.executable, "-m", "monitor", "run", "--config", str(cfg)],
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                code, err = proc.returncode, proc.stderr
            except subprocess.TimeoutExpired:
                code, err = -1, "hang: no exit within 60 s"
            at_start["cases"] += 1
            if code == 2:
                at_start["exit_2"] += 1
            else:
                at_start["crashes"].append({"case": case, "exit": code, "stderr": err[-300:]})
            at_start["traceback"] += "Traceback" in err

        on_sighup: dict[str, Any] = {"cases": 0, "refused": 0, "crashes": [], "not_scoring_after": []}
        live_dir = bench.workdir / "hostile-live" / "det"
        shutil.rmtree(live_dir.parent, ignore_errors=True)
        shutil.copytree(bench.artifacts["det"], live_dir)
        data = bench.config(["A1"])
        data["units"][0]["detector"]["artifact"] = str(live_dir)
        svc = SpawnedService(data, bench.workdir, "sighup").start()
        pub = LivePublisher(bench.broker, ["A1"])
        t0 = time.time() - 10_000
        pub.backfill(WINDOW, t0 + WINDOW)
        row = WINDOW
        for n, case in enumerate(CASE_NAMES, start=1):
            build_case(case, bench.artifacts["det"], live_dir)
            assert svc.proc is not None
            svc.proc.send_signal(signal.SIGHUP)
            refused = wait_until(lambda n=n: svc.metric("plantwatch_model_reloads_total", result="error") >= n, 30)
            on_sighup["cases"] += 1
            if not svc.alive():
                on_sighup["crashes"].append(case)
                svc.start()
                continue
            on_sighup["refused"] += int(refused)
            before = svc.metric("plantwatch_windows_scored_total", detector="reconstruction")
            pub.publish_tick(t0 + row)  # the next row: it completes at once, so its window is due
            row += 1
            pub.client.drain(30)
            scored = wait_until(
                lambda b=before: svc.metric("plantwatch_windows_scored_total", detector="reconstruction") > b, 30
            )
            if not scored:
                on_sighup["not_scoring_after"].append(case)
        shutil.rmtree(live_dir)  # the good artifact back: the next reload is accepted
        shutil.copytree(bench.artifacts["det"], live_dir)
        assert svc.proc is not None
        svc.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: svc.metric("plantwatch_model_reloads_total", result="ok") >= 1, 30)
        on_sighup["ok_reloads_after_the_good_one_is_back"] = svc.metric("plantwatch_model_reloads_total", result="ok")
        on_sighup["alive_and_ready"] = svc.alive() and svc.ready()
        pub.close()
        svc.stop()
    return {"at_start": at_start, "on_sighup": on_sighup}


# --- clocks ----------------------------------------------------------------------------------------------------


def clocks(bench: Bench) -> dict[str, Any]:
    seconds = 40
    with bench.broker_running() as broker:
        svc = SpawnedService(bench.config(["C1", "C2"]), bench.workdir, "clocks").start()
        pub = LivePublisher(broker, ["C1", "C2"])
        first = live_start() + 1
        # C2's first reading claims ts = 1.0 (a gateway that booted without a clock), before its genuine stream.
        pub.client.publish(f"{PREFIX}/plant/C2/readings", pub.row_payload(1.0, 1))
        hostile = 1

        def hook(i: int, tick: float) -> None:
            nonlocal hostile
            if i in (10, 20):  # 100 s and 110 s ahead of C1's cadence, inside max_clock_skew_s (120 s)
                pub.client.publish(f"{PREFIX}/plant/C1/readings", pub.row_payload(tick + 100 + (i == 20) * 10, 0))
                hostile += 1

        pub.run(seconds, first, hook)
        pub.join()
        genuine = 2 * seconds
        wait_until(lambda: svc.metric("plantwatch_readings_received_total") >= genuine, 30, 0.2)
        time.sleep(1.5)
        rejected = svc.scrape().by_label("plantwatch_readings_rejected_total", "reason")
        received = svc.scrape().by_label("plantwatch_readings_received_total", "unit")
        result = {
            "genuine_sent": genuine,
            "hostile_sent": hostile,
            "genuine_received": {u: int(v) for u, v in received.items()},
            "genuine_lost": genuine - int(sum(received.values())),
            "rejected_by_reason": {r: int(v) for r, v in rejected.items() if v},
            "gap_windows": svc.metric("plantwatch_windows_skipped_total", reason="gap"),
            "windows_scored": svc.metric("plantwatch_windows_scored_total", detector="reconstruction"),
            "windows_expected": 2 * (seconds - WINDOW + 1),
        }
        pub.close()
        svc.stop()
    return result


# --- broker kill -9 -------------------------------------------------------------------------------------------


def broker_kill9(bench: Bench) -> dict[str, Any]:
    units = [f"B{i}" for i in range(20)]
    seconds, kill_at, down_s = 40, 12, 3.0
    with bench.broker_running() as broker:
        svc = SpawnedService(bench.config(units), bench.workdir, "broker-kill").start()
        recorder = ScoreRecorder(broker)
        pub = LivePublisher(broker, units)
        first = live_start() + 1
        pub.backfill(WINDOW, first)
        restarted_at = math.nan

        def hook(i: int, tick: float) -> None:
            nonlocal restarted_at
            if i == kill_at:
                broker.kill()
                time.sleep(down_s)
                broker.start()
                restarted_at = time.time()

        pub.run(seconds, first, hook)
        pub.join()
        wait_until(lambda: svc.metric("plantwatch_readings_received_total") >= pub.sent, 30, 0.2)
        time.sleep(1.5)
        received = svc.metric("plantwatch_readings_received_total")
        result = {
            "sent": pub.sent,
            "received": received,
            "lost_in_broker": pub.sent - received,
            "duplicates": svc.metric("plantwatch_readings_rejected_total", reason="duplicate"),
            "reconnects": svc.metric("plantwatch_mqtt_connects_total") - 1,
            # The recorder resubscribes in on_connect, so it hears the first score after the broker is back.
            "seconds_restart_to_next_score": round(recorder.first_after(restarted_at) - restarted_at, 2),
        }
        recorder.close()
        pub.close()
        svc.stop()
    return result


# --- service kill -9 ------------------------------------------------------------------------------------------


def service_kill9(bench: Bench, marks_every: list[float]) -> list[dict[str, Any]]:
    return [_service_kill9_once(bench, every) for every in marks_every]


def _service_kill9_once(bench: Bench, every: float) -> dict[str, Any]:
    units = [f"K{i}" for i in range(20)]
    seconds, kill_at = 45, 20
    with bench.broker_running() as broker:
        state = bench.workdir / f"state-{every}"
        shutil.rmtree(state, ignore_errors=True)
        svc = SpawnedService(
            bench.config(units, state={"dir": str(state), "marks_every_s": every}), bench.workdir, "kill"
        )
        svc.start()
        recorder = ScoreRecorder(broker)
        pub = LivePublisher(broker, units)
        first = live_start() + 1
        pub.backfill(WINDOW, first)
        timing: dict[str, float] = {}

        def hook(i: int, tick: float) -> None:
            if i == kill_at:
                timing["killed"] = time.time()
                svc.kill()
                svc.start(wait=False)
                timing["spawned"] = time.time()

        pub.run(seconds, first, hook)
        wait_until(lambda: "spawned" in timing, seconds + 30, 0.1)
        wait_until(svc.ready, 90, 0.05)
        timing["ready"] = time.time()
        pub.join()
        expected = {(u, t) for u in units for t in pub.ticks[WINDOW - 1 :]}
        wait_until(lambda: expected <= set(recorder.counts), 60, 0.5)
        placed = svc.metric("plantwatch_journal_replayed_total", result="placed")
        received = svc.metric("plantwatch_readings_received_total")
        scored = set(recorder.counts)
        result = {
            "marks_every_s": every,
            "readings_sent": pub.sent,
            "journal_replayed": placed,
            "received_after_restart": received,
            "readings_lost": pub.sent - placed - received,
            "duplicates_refused": svc.metric("plantwatch_readings_rejected_total", reason="duplicate"),
            "windows_expected": len(expected),
            "windows_missing": len(expected - scored),
            "windows_scored_twice": sum(c - 1 for c in recorder.counts.values() if c > 1),
            "windows_rescored_from_journal": svc.metric("plantwatch_journal_replayed_total", result="rescored"),
            "seconds_kill_to_ready": round(timing["ready"] - timing["killed"], 2),
            "seconds_ready_to_first_score": round(recorder.first_after(timing["ready"]) - timing["ready"], 2),
        }
        recorder.close()
        pub.close()
        svc.stop()
    return result


# --- fast replay ----------------------------------------------------------------------------------------------


def replay(bench: Bench) -> dict[str, Any]:
    live_units = [f"L{i}" for i in range(20)]
    windows = 1004
    with bench.broker_running() as broker:
        svc = SpawnedService(bench.config([*live_units, "R1"]), bench.workdir, "replay").start()
        recorder = ScoreRecorder(broker)
        live = LivePublisher(broker, live_units)
        first = live_start() + 1
        live.backfill(WINDOW, first)
        live.run(20, first)
        time.sleep(3)
        flood = _Client(broker.host, broker.port, qos=1, inflight=200)
        t0 = time.time() - 2 * 86400  # two days ago: a gateway's buffer, or a historian replayed
        rows = windows + WINDOW - 1
        values = normal_signal(np.arange(rows, dtype=np.float64) + t0, np.zeros(1))[:, 0, :]
        started = time.perf_counter()
        for k in range(rows):
            flood.publish(f"{PREFIX}/plant/R1/readings", _payload(t0 + k, values[k]))
        flood.drain(120)
        published_s = time.perf_counter() - started
        live.join()
        wait_until(lambda: sum(1 for (u, _) in recorder.counts if u == "R1") >= windows, 120, 0.5)
        result = {
            "replayed_rows": rows,
            "seconds_to_publish": round(published_s, 2),
            "replay_windows_expected": windows,
            "replay_windows_scored": sum(1 for (u, _) in recorder.counts if u == "R1"),
            "skipped_backlog": svc.metric("plantwatch_windows_skipped_total", reason="backlog"),
            "skipped_queue_full": svc.metric("plantwatch_windows_skipped_total", reason="queue_full"),
            "live_windows_scored": sum(1 for (u, _) in recorder.counts if u != "R1"),
        }
        flood.close()
        recorder.close()
        live.close()
        svc.stop()
    return result


# --- journal replay at scale ------------------------------------------------------------------------------------


def journal_scale(bench: Bench, units: int) -> dict[str, Any]:
    """How long a restart's replay takes at ``units`` units: a journal holding every unit's ring span (the default
    ring of a 20-row window: 84 rows), replayed in this process through the parser and the buffers as `App` does."""
    from prometheus_client import CollectorRegistry

    from models.artifacts import load_artifact
    from monitor.buffers.ring_buffers import RingBuffers
    from monitor.config import parse_config
    from monitor.ingest import Parser
    from monitor.journal import Journal
    from monitor.metrics import Metrics
    from monitor.params import specs_from_config
    from monitor.scheduler import JobQueue
    from monitor.stages import BufferStage, Inbox

    names = [f"J{i:04d}" for i in range(units)]
    with bench.broker_running():  # only for a valid config: nothing connects
        cfg = parse_config(bench.config(names))
    models = {"det": load_artifact(bench.artifacts["det"]), "fc": load_artifact(bench.artifacts["fc"])}
    specs, _, _ = specs_from_config(cfg, models)
    rows = next(iter(specs.values())).capacity
    directory = bench.workdir / "journal-scale"
    shutil.rmtree(directory, ignore_errors=True)
    journal = Journal(directory, retain_s=1e9)
    phases = np.asarray(np.arange(units) * 7.31 % 60.0, dtype=np.float64)
    t0 = time.time() - rows - 5
    for k in range(rows):
        values = normal_signal(np.array([t0 + k]), phases, seed=k)[0]
        for u, name in enumerate(names):
            journal.append(f"{PREFIX}/plant/{name}/readings", _payload(t0 + k, values[u]), t0 + k + 0.05)
    journal.close()
    size_mb = sum(f.stat().st_size for f in directory.iterdir()) / 2**20
    metrics = Metrics(CollectorRegistry(), units={u.name: tuple(u.sensors) for u in cfg.units}, models={})
    stage = BufferStage(RingBuffers(specs), Inbox(10), JobQueue(10**7, metrics), metrics)
    started = time.perf_counter()
    replay = stage.replay(Parser.from_config(cfg), directory, {name: t0 + rows for name in names})
    seconds = time.perf_counter() - started
    return {
        "units": units,
        "rows_per_unit": rows,
        "journal_messages": replay.placed + replay.refused,
        "journal_mb": round(size_mb, 1),
        "placed": replay.placed,
        "replay_seconds": round(seconds, 2),
        "messages_per_s": round((replay.placed + replay.refused) / seconds),
        "priming_windows": len(replay.primes),
    }


# --- soak -----------------------------------------------------------------------------------------------------


def _proc_sample(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return {
        "rss_mb": round(rss_kb / 1024, 1),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": len(os.listdir(f"/proc/{pid}/task")),
    }


def soak(bench: Bench, minutes: float) -> dict[str, Any]:
    units = [f"S{i:02d}" for i in range(50)]
    with bench.broker_running() as broker:
        state = bench.workdir / "state-soak"
        shutil.rmtree(state, ignore_errors=True)
        svc = SpawnedService(bench.config(units, state={"dir": str(state)}), bench.workdir, "soak").start()
        assert svc.proc is not None
        pid = svc.proc.pid
        pub = LivePublisher(broker, units)
        hostile = hostile_corpus(5000, time.time())
        first = live_start() + 1
        pub.backfill(WINDOW, first)
        sent_hostile = 0

        def hook(i: int, tick: float) -> None:
            nonlocal sent_hostile
            for reason, topic, payload in hostile[(i * 3) % len(hostile) : (i * 3) % len(hostile) + 3]:
                if reason not in ("future",):  # the corpus's ts is the soak's start; keep only time-free cases
                    pub.client.publish(topic, payload)
                    sent_hostile += 1

        seconds = int(minutes * 60)
        pub.run(seconds, first, hook)
        samples = []
        began = time.time()
        for minute in range(int(minutes) + 1):
            target = began + minute * 60
            time.sleep(max(0.0, target - time.time()))
            samples.append({"minute": minute, **_proc_sample(pid)})
        pub.join()
        time.sleep(1.0)
        base = samples[min(2, len(samples) - 1)]  # after the warm-up: torch's caches, the first batches
        end = samples[-1]
        result = {
            "minutes": minutes,
            "units": len(units),
            "readings_sent": pub.sent,
            "hostile_sent": sent_hostile,
            "received": svc.metric("plantwatch_readings_received_total"),
            "rejected": svc.scrape().total("plantwatch_readings_rejected_total"),
            "samples": samples,
            "rss_growth_pct_from_minute_2": round(100 * (end["rss_mb"] - base["rss_mb"]) / base["rss_mb"], 2),
            "fds_growth": end["fds"] - base["fds"],
            "threads_growth": end["threads"] - base["threads"],
            "alive": svc.alive() and svc.ready(),
        }
        pub.close()
        svc.stop()
    return result


# --- main -----------------------------------------------------------------------------------------------------

SECTIONS = ("payloads", "artifacts", "clocks", "broker_kill9", "service_kill9", "replay", "journal_scale", "soak")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help="comma-separated subset of " + ", ".join(SECTIONS)
    )
    parser.add_argument("--quick", action="store_true", help="smaller corpus, fewer artifact starts, 2-minute soak")
    parser.add_argument("--hostile", type=int, default=None, help="hostile messages in the payload corpus (10,000)")
    parser.add_argument("--soak-minutes", type=float, default=None, help="soak length (30; --quick: 2)")
    parser.add_argument("--journal-units", type=int, default=1000, help="units of the journal_scale section")
    parser.add_argument("--marks-every", default="0.2,1,5", help="state.marks_every_s values for service_kill9")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "pw-faults")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    sections = [s for s in args.sections.split(",") if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise SystemExit(f"unknown sections: {', '.join(sorted(unknown))}")
    args.workdir.mkdir(parents=True, exist_ok=True)
    bench = Bench(args.workdir, args.quick)
    results: dict[str, Any] = {"machine": machine()}
    runners: dict[str, Callable[[], Any]] = {
        "payloads": lambda: payloads(bench, args.hostile or (2000 if args.quick else 10_000)),
        "artifacts": lambda: artifacts(bench),
        "clocks": lambda: clocks(bench),
        "broker_kill9": lambda: broker_kill9(bench),
        "service_kill9": lambda: service_kill9(bench, [float(x) for x in args.marks_every.split(",")]),
        "replay": lambda: replay(bench),
        "journal_scale": lambda: journal_scale(bench, args.journal_units),
        "soak": lambda: soak(bench, args.soak_minutes or (2.0 if args.quick else 30.0)),
    }
    for name in sections:
        started = time.perf_counter()
        results[name] = runners[name]()
        print(f"## {name} ({time.perf_counter() - started:.0f} s)\n{json.dumps(results[name], indent=1)}", flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
