"""The restart journal and scoring marks: records back as written, torn and corrupt records skipped, old segments
expired, failures reported, and a replay that rebuilds the buffers and queues only what was not scored."""

from __future__ import annotations

import json
import os
from pathlib import Path

from prometheus_client import CollectorRegistry

from monitor.buffers.ring_buffers import RingBuffers
from monitor.buffers.unit_spec import UnitSpec
from monitor.ingest import Parser
from monitor.journal import Journal, ScoredMarks, read_journal
from monitor.messages import WindowJob
from monitor.metrics import Metrics
from monitor.scheduler import JobQueue
from monitor.stages import BufferStage, Inbox

T0 = 1_790_000_000.0


def test_records_come_back_in_order_across_segments(tmp_path: Path) -> None:
    journal = Journal(tmp_path, retain_s=3600, rotate_s=10)
    written = [(f"plant/R{i % 3}/readings", f'{{"i": {i}}}'.encode(), T0 + i * 2.5) for i in range(20)]
    for topic, payload, received_at in written:
        assert journal.append(topic, payload, received_at)
    journal.close()
    assert len(list(tmp_path.glob("*.log"))) == 5  # a segment per 10 s of receive time
    assert list(read_journal(tmp_path)) == written


def test_segments_older_than_the_retention_are_deleted(tmp_path: Path) -> None:
    journal = Journal(tmp_path, retain_s=30, rotate_s=10)
    for i in range(100):
        journal.append("t", b"x", T0 + i)
    journal.close()
    kept = [received_at for _, _, received_at in read_journal(tmp_path)]
    # At least the 30 s before the newest segment began are kept, and at most a segment more.
    assert kept[-1] == T0 + 99 and T0 + 90 - 30 - 10 <= kept[0] <= T0 + 90 - 30


def test_a_torn_or_corrupt_record_ends_its_segment_only(tmp_path: Path) -> None:
    journal = Journal(tmp_path, retain_s=3600, rotate_s=10)
    for i in range(6):
        journal.append("t", f"{i}".encode(), T0 + i * 5)  # segments: [0, 5], [10, 15], [20, 25]
    journal.close()
    first, second, _ = sorted(tmp_path.glob("*.log"))
    data = bytearray(first.read_bytes())
    data[-1] ^= 0xFF  # the last record of the first segment no longer matches its CRC
    first.write_bytes(bytes(data))
    with second.open("ab") as f:
        f.write(b"\x00\x01\x02")  # a write cut short
    assert [p for _, p, _ in read_journal(tmp_path)] == [b"0", b"2", b"3", b"4", b"5"]


def test_an_append_to_a_full_disk_reports_failure_without_raising(tmp_path: Path) -> None:
    journal = Journal(tmp_path, retain_s=60)
    assert journal.append("t", b"x", T0)
    assert journal._fd is not None
    os.close(journal._fd)  # the descriptor goes bad under it, as a write error would
    assert journal.append("t", b"y", T0 + 1) is False
    assert journal.append("t", b"z", T0 + 2)  # the next append opens a fresh segment
    assert [p for _, p, _ in read_journal(tmp_path)] == [b"x", b"z"]


def test_marks_round_trip_and_an_unreadable_file_means_none(tmp_path: Path) -> None:
    path = tmp_path / "scored.json"
    marks = ScoredMarks(path)
    assert marks.load() == {}
    job = WindowJob("R1", T0 + 5, None, T0, T0)  # type: ignore[arg-type]  # marks only read unit and end_ts
    marks.update([job])
    assert marks.save_due(idle=True) is True
    assert marks.save_due(idle=True) is None  # nothing changed since
    assert ScoredMarks(path).load() == {"R1": T0 + 5}
    path.write_text("[1, 2")
    assert ScoredMarks(path).load() == {}
    path.write_text(json.dumps({"R1": "soon"}))
    assert ScoredMarks(path).load() == {}


def test_replay_rebuilds_the_buffers_and_queues_only_the_windows_not_scored(tmp_path: Path) -> None:
    sensors = ("a", "b")
    specs = {"R1": UnitSpec(sensors=sensors, period_s=1.0, window_rows=8)}
    parser = Parser(units={"R1": sensors}, max_clock_skew_s=1e12)
    journal = Journal(tmp_path, retain_s=3600)
    for i in range(30):
        payload = json.dumps({"ts": T0 + i, "values": {"a": float(i), "b": 1.0}}).encode()
        journal.append("plant/R1/readings", payload, T0 + i + 0.1)
    journal.append("plant/R9/readings", b'{"values": {"a": 1}}', T0 + 30)  # a unit no longer configured
    journal.close()

    metrics = Metrics(CollectorRegistry(), units={"R1": sensors}, models={})
    jobs = JobQueue(1000, metrics)
    stage = BufferStage(RingBuffers(specs), Inbox(10), jobs, metrics)
    replay = stage.replay(parser, tmp_path, {"R1": T0 + 25})
    assert (replay.placed, replay.refused) == (30, 1)
    queued = jobs.take(1000, 0.0, 0.1)
    # Rows 26..29 had been taken by the killed process and not scored (its marks end at row 25).
    assert [j.end_ts for j in queued] == [T0 + 26, T0 + 27, T0 + 28, T0 + 29] and replay.rescored == 4
    assert [j.end_ts for j in replay.primes] == [T0 + 25]
    assert list(replay.primes[0].window[:, 0]) == [float(i) for i in range(18, 26)]
