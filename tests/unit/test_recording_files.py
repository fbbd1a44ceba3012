"""The recording's files (monitor/recording/files.py): whole lines, rotation, the size and age limits, a restart, a
full disk; and the reader's rule for a last line that is not whole (monitor/wire/csvfile.py)."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from monitor.buffers import ClosedRow
from monitor.recording.files import FileLimits, RotatingFiles
from monitor.recording.recorder import encode_rows
from monitor.wire.csvfile import CsvError, read_table

HEADER = "ts,unit,a,b\n"


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def lines(first: int, n: int) -> list[str]:
    rows = [
        ClosedRow("R1", float(first + i), [float(first + i) / 4, float("nan") if i % 7 == 3 else -1.5])
        for i in range(n)
    ]
    return encode_rows("R1", rows)


def files(directory: Path, clock: Clock, **limits: float | None) -> RotatingFiles:
    settings = {"rotate_bytes": 10**9, "rotate_s": 10**9, "max_bytes": None, "max_age_s": None, **limits}
    return RotatingFiles(directory, "rows", ".csv", HEADER, FileLimits(**settings), clock=clock)  # type: ignore[arg-type]


def data_lines(paths: list[Path]) -> list[str]:
    out = []
    for path in paths:
        text = path.read_text()
        assert text.startswith(HEADER) and text.endswith("\n"), path
        out += text.splitlines(keepends=True)[1:]
    return out


def test_rotation_by_size_keeps_every_line_once_in_order_in_files_the_reader_takes(tmp_path: Path) -> None:
    clock = Clock()
    written = lines(0, 200)
    per_line = len(written[0])
    out = files(tmp_path, clock, rotate_bytes=1000)
    for start in range(0, 200, 30):  # a writer cycle's worth at a time
        out.write(written[start : start + 30])
    paths = sorted(tmp_path.iterdir())
    assert paths == out.paths and len(paths) >= 4  # names sort in the order the files were written
    assert all(p.name.startswith("rows-") and p.name.endswith("Z.csv") for p in paths)
    assert len({p.name for p in paths}) == len(paths)  # begun in one second: the stamps moved on
    assert all(p.stat().st_size < 1000 + 2 * per_line for p in paths)  # past the size by less than a line
    assert data_lines(paths) == written
    ts = np.concatenate([read_table(p).timestamps for p in paths])
    np.testing.assert_array_equal(ts, np.arange(200.0))
    values = np.concatenate([read_table(p).values for p in paths])
    assert values[0, 0] == 0.0 and values[5, 0] == 1.25 and np.isnan(values[3, 1]) and values[4, 1] == -1.5
    assert out.on_disk == sum(p.stat().st_size for p in paths)


def test_the_size_limit_deletes_the_oldest_files_and_never_the_current(tmp_path: Path) -> None:
    clock = Clock()
    written = lines(0, 300)
    out = files(tmp_path, clock, rotate_bytes=1000, max_bytes=3000)
    for line in written:
        out.write([line])
    paths = sorted(tmp_path.iterdir())
    kept = data_lines(paths)
    assert 2 <= len(paths) <= 4
    assert sum(p.stat().st_size for p in paths) <= 3000
    assert kept == written[-len(kept) :]  # the newest rows, none missing in between
    # A limit smaller than one file: the current one stays, whatever its size.
    tiny = files(tmp_path / "tiny", clock, rotate_bytes=10**6, max_bytes=10)
    tiny.write(written[:5])
    assert len(tiny.paths) == 1 and data_lines(tiny.paths) == written[:5]


def test_rotation_and_deletion_by_age(tmp_path: Path) -> None:
    clock = Clock()
    out = files(tmp_path, clock, rotate_s=60, max_age_s=300)
    out.write(lines(0, 3))
    clock.t += 30
    out.write(lines(3, 3))  # the same file: 30 s old
    clock.t += 31
    out.write(lines(6, 3))  # 61 s: a new one
    assert len(out.paths) == 2
    clock.t += 100
    out.enforce(clock())  # an idle unit's file ends once it is rotate_s old, and ages like the others
    assert len(out.paths) == 2
    clock.t += 210  # the first file was last written 341 s ago, the second 310 s ago
    out.enforce(clock())
    assert out.paths == []
    out.write(lines(9, 1))
    assert data_lines(out.paths) == lines(9, 1)


def test_a_restart_counts_what_the_last_run_left_and_cuts_its_unterminated_tail(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    first = files(tmp_path, clock, rotate_bytes=1000, max_bytes=5000)
    first.write(lines(0, 60))
    left = first.paths
    with left[-1].open("ab") as f:  # a write a kill stopped half-way
        f.write(b"1800000060.0,R1,15.0,-1.")
    (tmp_path / "rows-99999999T999999Z.csv").write_text("not one of ours\n")  # matches the pattern, not a date
    second = files(tmp_path, clock, rotate_bytes=1000, max_bytes=5000)  # the same second: the stamps must move on
    with caplog.at_level(logging.WARNING, logger="monitor.recording.files"):
        second.write(lines(60, 60))
    assert "cut an unterminated last line" in caplog.text
    paths = sorted(p for p in tmp_path.iterdir() if not p.name.startswith("rows-9999"))
    assert paths == second.paths and set(left) & set(paths)  # the old files count, the oldest went first
    assert sum(p.stat().st_size for p in paths) <= 5000
    kept = data_lines(paths)
    assert kept == (lines(0, 60) + lines(60, 60))[-len(kept) :]


def test_a_full_disk_leaves_whole_lines_and_the_next_write_goes_on(tmp_path: Path) -> None:
    """A real short write: the file size limit (RLIMIT_FSIZE) stops the kernel mid-line, as a full disk does."""
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from monitor.recording.files import FileLimits, RotatingFiles
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of the signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000))
        out = RotatingFiles(Path({str(tmp_path)!r}), "rows", ".csv", {HEADER!r}, FileLimits(10**9, 10**9, None, None))
        line = "1800000000.0,R1,0.25,-1.5\\n"
        errors = 0
        for i in range(40):
            try:
                out.write([line] * 10)
            except OSError:
                errors += 1
        print(errors)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert int(done.stdout) > 0, done.stderr  # it hit the limit
    (path,) = tmp_path.iterdir()
    text = path.read_text()
    assert text.endswith("\n") and len(text) <= 3000
    assert all(line == "1800000000.0,R1,0.25,-1.5" for line in text.splitlines()[1:])
    assert len(read_table(path).timestamps) == len(text.splitlines()) - 1


def test_the_reader_ignores_a_last_line_that_is_not_whole_only_when_asked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "rows-20270115T000000Z.csv"
    path.write_text(HEADER + "".join(lines(0, 3)) + "3.0,R1,0.7")  # the last value cut short, a field missing
    with pytest.raises(CsvError, match="line 5 has 3 fields"):
        read_table(path)  # by default such a line is an error, as in any CSV
    with caplog.at_level(logging.WARNING, logger="monitor.wire.csvfile"):
        table = read_table(path, whole_lines=True)
    np.testing.assert_array_equal(table.timestamps, [0.0, 1.0, 2.0])
    assert "ignored line 5, the last: not whole" in caplog.text
    # Cut inside its last number: the field count is right, only the missing newline tells.
    path.write_text(HEADER + "".join(lines(0, 3)) + "3.0,R1,0.75,-1.")
    np.testing.assert_array_equal(read_table(path, whole_lines=True).timestamps, [0.0, 1.0, 2.0])
    assert len(read_table(path).timestamps) == 4  # a file from elsewhere: its last row without a newline is whole
    path.write_text("ts,unit,a")
    with pytest.raises(CsvError, match="header row is not whole"):
        read_table(path, whole_lines=True)
