"""monitor.wire: the one sensor CSV reader, the one label record and file, and that each format and word is
written once (the readers, the time rule, the vocabulary tuples, the topic templates, the payload schema)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from monitor.cli import build_parser
from monitor.messages import ALERT_STATES, DETECTORS, REJECT_REASONS, SEVERITIES, SKIP_REASONS
from monitor.wire.csvfile import LABEL_COLUMNS, TIME_COLUMNS, CsvError, read_csv, read_table
from monitor.wire.labels import LABEL_HEADER, Label, read_labels, write_labels
from monitor.wire.topics import READINGS_TOPIC, SENSOR_TOPIC, topic_pattern
from simulators import parse_scenario, simulate
from simulators.replay import table_rows

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("monitor", "models", "simulators", "benchmarks")
T0 = 1_700_000_000.0


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


# --- the reader, through every caller ----------------------------------------------------------------------------
@pytest.mark.parametrize("column", [*TIME_COLUMNS, "Timestamp", "TS"])
def test_every_documented_time_column_reads_the_same_in_every_caller(column: str, tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", f"{column},unit,a,b\n{T0},R1,1.0,2.0\n{T0 + 1},R1,1.5,\n")
    table = read_table(path)
    assert table.time_column == column and table.timestamps.tolist() == [T0, T0 + 1]
    train = table.for_unit()  # plantwatch train
    assert train.sensors == ("a", "b") and train.unit == "R1" and train.period_s() == 1.0
    backtest = read_csv(path, {"R1": ("a", "b")}, default_unit=None)  # plantwatch backtest, report
    assert backtest.ts.tolist() == [T0, T0 + 1]
    np.testing.assert_array_equal(backtest.values["R1"], [[1.0, 2.0], [1.5, np.nan]])
    rows = list(table_rows(table, unit=None))  # plantwatch replay: a missing cell is not published
    assert [(r.ts, r.unit, r.values) for r in rows] == [(T0, "R1", {"a": 1.0, "b": 2.0}), (T0 + 1, "R1", {"a": 1.5})]


@pytest.mark.parametrize(
    "command", [["train", "--help"], ["backtest", "--help"], ["replay", "--help"], ["report", "--help"]]
)
def test_the_docs_name_every_time_column(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser(command[0]).parse_args(command)
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps the help
    assert all(name in text for name in TIME_COLUMNS), (command, text)


def test_the_readme_and_the_backtest_name_every_time_column() -> None:
    readme = (ROOT / "README.md").read_text()
    files = readme[readme.index("Files. One reader") :]
    backtest = " ".join((ROOT / "monitor" / "backtest.py").read_text().split())
    for name in TIME_COLUMNS:
        assert f"`{name}`" in files and f"``{name}``" in backtest


def test_semicolons_iso_times_and_a_byte_order_mark(tmp_path: Path) -> None:
    path = write(
        tmp_path / "skab.csv",
        "datetime;Temp K;anomaly\n2020-03-09 10:14:33;350.1;0\n2020-03-09T10:14:34Z;350.2;0\n"
        "2020-03-09T11:14:35+01:00;350.3;1\n",
        encoding="utf-8-sig",
    )
    table = read_table(path)
    assert table.timestamps.tolist() == [1583748873.0, 1583748874.0, 1583748875.0]  # no zone = UTC
    assert table.columns == ("Temp K", "anomaly") and table.sensor_columns() == ("Temp K",)
    assert table.column_index("TempK") == 0  # a config name cannot hold the space
    assert table.for_unit().sensors == ("Temp K",)  # the label column is no sensor by default
    assert read_table(path).for_unit(["TempK", "anomaly"]).values[:, 1].tolist() == [0.0, 0.0, 1.0]
    assert set(LABEL_COLUMNS) >= {"anomaly", "changepoint"}


def test_a_bad_cell_is_missing_for_scoring_and_refused_for_training(tmp_path: Path) -> None:
    path = write(
        tmp_path / "d.csv",
        "timestamp,unit,a,b\n1,R1,1,na\n1,R2,hot,1\n2,R1,2,NULL\n2,R2,2,1\n3,R1,inf,\n3,R2,3,1\n",
    )
    data = read_csv(path, {"R1": ("a", "b"), "R2": ("a", "b")}, default_unit=None)
    np.testing.assert_array_equal(data.values["R1"], [[1, np.nan], [2, np.nan], [np.nan, np.nan]])
    np.testing.assert_array_equal(data.values["R2"][:, 0], [np.nan, 2, 3])
    table = read_table(path)
    with pytest.raises(CsvError, match=r"d\.csv: column 'a', line 6: infinite value"):
        table.for_unit(["a"], unit="R1")
    with pytest.raises(CsvError, match=r"column 'a', line 3: 'hot' is not a number"):
        table.for_unit(["a", "b"], unit="R2")
    assert table.for_unit(["b"], unit="R1").values.shape == (3, 1)  # only the chosen unit's and sensors' cells
    assert table.for_unit(["b"], unit="R2").values.ravel().tolist() == [1.0, 1.0, 1.0]
    assert np.isnan(table.for_unit(["a"], unit="R2", strict=False).values[0, 0])


def test_training_rows_come_in_time_order_of_the_chosen_unit(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "timestamp,unit,a\n3,R1,30\n1,R1,10\n\n2,R2,99\n2,R1,20\n")
    series = read_table(path).for_unit(unit="R1")
    assert series.timestamps.tolist() == [1, 2, 3] and series.values.ravel().tolist() == [10, 20, 30]
    with pytest.raises(CsvError, match="holds units R1, R2: choose one with --unit"):
        read_table(path).for_unit()
    with pytest.raises(CsvError, match="no unit column; name the unit"):
        read_csv(write(tmp_path / "n.csv", "timestamp,a\n1,2\n"), {"R1": ("a",), "R2": ("a",)}, default_unit=None)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty file (no header row)"),
        ("when,a\n1,2\n", "no time column (expected one of timestamp, datetime, time, ts)"),
        ("timestamp,a\n1,2\n2,3,4\n", "line 3 has 3 fields, the header has 2"),
        ("timestamp,a\n1,2\nyesterday,3\n", "column 'timestamp', line 3: 'yesterday' is not a time"),
        ("timestamp,a\nnan,2\n", "line 2: 'nan' is not a time"),
        ("timestamp,a,a\n1,2,3\n", "duplicate column names in the header"),
    ],
)
def test_an_unusable_file_is_one_clear_error(text: str, fragment: str, tmp_path: Path) -> None:
    with pytest.raises(CsvError) as caught:
        read_table(write(tmp_path / "bad.csv", text))
    assert fragment in str(caught.value) and "bad.csv" in str(caught.value) and "\n" not in str(caught.value)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(CsvError, match=r"cannot read .*absent\.csv: no such file"):
        read_table(tmp_path / "absent.csv")
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"timestamp,a\n1,\xff\xfe\n")
    with pytest.raises(CsvError, match="not a UTF-8 text file"):
        read_table(binary)
    with pytest.raises(CsvError, match="cannot read"):
        read_table(tmp_path)  # a directory


# --- labels ------------------------------------------------------------------------------------------------------
def test_the_simulator_writes_the_one_label_record_and_reads_it_back(tmp_path: Path) -> None:
    fault = {"kind": "bias", "unit": "reactor-01", "start": 20, "duration": 30, "sensors": ["level_m"]}
    scenario = parse_scenario({"units": 2, "faults": [fault]})
    result = simulate(scenario, 60, seed=1)
    assert all(type(label) is Label for label in result.labels)
    assert write_labels(result.labels, tmp_path / "l.csv") == 1
    assert tuple(read_labels(tmp_path / "l.csv")) == result.labels
    assert (tmp_path / "l.csv").read_text().splitlines()[0] == ",".join(LABEL_HEADER)


def test_read_labels(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("unit,kind,start,end,sensors\nR1,drift,100,200,temp;flow\nR2,spike,5,5,\n")
    assert read_labels(path) == [Label("R1", "drift", 100, 200, ("temp", "flow")), Label("R2", "spike", 5, 5, ())]
    path.write_text("unit,kind,start,end\nR1,step,2020-03-09T10:14:33Z,2020-03-09 10:15:33\n")
    assert read_labels(path) == [Label("R1", "step", 1583748873.0, 1583748933.0)]
    path.write_text("unit,kind,start,end,sensors\nR1,drift,300,200,temp\n")
    with pytest.raises(ValueError, match=r"labels\.csv:2: need start <= end"):
        read_labels(path)
    path.write_text("unit,kind,start,end,sensors\nR1,drift,soon,200,temp\n")
    with pytest.raises(CsvError, match=r"labels\.csv:2: start and end must be epoch seconds or ISO 8601"):
        read_labels(path)
    path.write_text("unit,start\nR1,1\n")
    with pytest.raises(ValueError, match="lacks columns"):
        read_labels(path)
    with pytest.raises(CsvError, match="no such file"):
        read_labels(tmp_path / "absent.csv")


def test_labels_round_trip_the_settled_column_and_old_files_without_it_still_read(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    labels = [
        Label("R1", "cooling_degradation", 100.0, 200.0, ("temp",), settled=2000.5),
        Label("R1", "bias", 3000.0, 3100.0, ("temp",)),  # no settling span given: settled is its end
    ]
    assert labels[1].settled == 3100.0
    assert write_labels(labels, path) == 2
    lines = path.read_text().splitlines()
    assert lines == [
        "unit,kind,start,end,settled,sensors",
        "R1,cooling_degradation,100.000,200.000,2000.500,temp",
        "R1,bias,3000.000,3100.000,3100.000,temp",
    ]
    assert read_labels(path) == labels
    # A file written before the column existed: settled = end, the same labels as a file that states it.
    path.write_text("unit,kind,start,end,sensors\nR1,drift,100,200,temp\n")
    (old,) = read_labels(path)
    assert (old.end, old.settled) == (200.0, 200.0)
    # An empty cell is the end too; ISO 8601 works as for start and end.
    path.write_text(
        "unit,kind,start,end,settled\nR1,step,100,200,\nR1,step,1583748873,1583748933,2020-03-09T11:00:00Z\n"
    )
    assert [lab.settled for lab in read_labels(path)] == [200.0, 1583751600.0]


def test_a_bad_settled_cell_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("unit,kind,start,end,settled,sensors\nR1,drift,100,200,300,temp\nR1,drift,400,500,450,temp\n")
    with pytest.raises(CsvError, match=r"labels\.csv:3: need end <= settled, got 500.0, 450.0"):
        read_labels(path)
    path.write_text("unit,kind,start,end,settled,sensors\nR1,drift,100,200,later,temp\n")
    with pytest.raises(CsvError, match=r"labels\.csv:2: settled must be empty, epoch seconds or ISO 8601"):
        read_labels(path)
    path.write_text("unit,kind,start,end,settled,sensors\nR1,drift,100,200,inf,temp\n")
    with pytest.raises(CsvError, match=r"labels\.csv:2: settled must be"):
        read_labels(path)
    with pytest.raises(ValueError, match=r"settled 150\.0 is before its end 200\.0"):
        Label("R1", "drift", 100.0, 200.0, settled=150.0)


# --- the package's boundary ----------------------------------------------------------------------------------------
def test_the_wire_package_imports_nothing_of_the_service_and_no_torch() -> None:
    code = (
        "import sys, importlib, pkgutil, monitor.wire\n"
        "for m in pkgutil.iter_modules(monitor.wire.__path__):\n"
        "    importlib.import_module('monitor.wire.' + m.name)\n"
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith('models') or m.startswith('simulators') or "
        "(m.startswith('monitor') and m != 'monitor' and m.split('.')[:2] != ['monitor', 'wire'])]\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_topic_templates_match_what_the_simulator_publishes() -> None:
    match = topic_pattern(READINGS_TOPIC).match(READINGS_TOPIC.format(unit="R-1"))
    assert match is not None and match.group("unit") == "R-1"
    match = topic_pattern(SENSOR_TOPIC).match(SENSOR_TOPIC.format(unit="R-1", sensor="t.K"))
    assert match is not None and match.group("sensor") == "t.K"
    assert topic_pattern(READINGS_TOPIC).match("plant/R-1/extra/readings") is None


# --- each thing once -------------------------------------------------------------------------------------------------
def _modules() -> list[tuple[Path, ast.Module]]:
    return [(p.relative_to(ROOT), ast.parse(p.read_text())) for d in PRODUCT for p in sorted((ROOT / d).rglob("*.py"))]


def _string_groups(tree: ast.Module) -> list[frozenset[str]]:
    """The string members of every tuple, list, set and ``Literal[...]`` written in the source."""
    literals = [n for n in ast.walk(tree) if isinstance(n, ast.Subscript) and ast.unparse(n.value) == "Literal"]
    literal_ids = {id(n) for n in literals}
    inside = {id(n.slice) for n in literals}  # a Literal's tuple is part of it, not a second group
    groups = []
    for node in ast.walk(tree):
        if id(node) in literal_ids:
            assert isinstance(node, ast.Subscript)
            elements = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        elif isinstance(node, ast.Tuple | ast.List | ast.Set) and id(node) not in inside:
            elements = node.elts
        else:
            continue
        strings = [e.value for e in elements if isinstance(e, ast.Constant) and isinstance(e.value, str)]
        if len(strings) == len(elements):
            groups.append(frozenset(strings))
    return groups


VOCABULARY = {
    "detectors": frozenset(DETECTORS),
    "reject reasons": frozenset(REJECT_REASONS),
    "skip reasons": frozenset(SKIP_REASONS),
    "alert states": frozenset(ALERT_STATES),
    "severities": frozenset(SEVERITIES),
    "time columns": frozenset(TIME_COLUMNS),
    "label columns": frozenset(LABEL_COLUMNS),
    "label header": frozenset(LABEL_HEADER),
}


def test_each_word_list_is_written_once() -> None:
    found: dict[str, list[str]] = {name: [] for name in VOCABULARY}
    for path, tree in _modules():
        for strings in _string_groups(tree):
            for name, words in VOCABULARY.items():
                if len(strings) >= 2 and strings <= words:  # two or more of its words and no other
                    found[name].append(str(path))
    assert found == {
        "detectors": ["monitor/messages.py"],  # ModelDetector; Detector adds "sensor" to it
        "reject reasons": ["monitor/messages.py"],
        "skip reasons": ["monitor/messages.py"],
        "alert states": ["monitor/messages.py"],
        "severities": ["monitor/messages.py"],
        "time columns": ["monitor/wire/csvfile.py"],
        "label columns": ["monitor/wire/csvfile.py"],
        "label header": ["monitor/wire/labels.py"],
    }


def _calls(tree: ast.Module) -> list[str]:
    return [ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)]


READER_NAMES = ("read_csv", "read_table", "read_sensor_csv", "read_labels", "load_labels", "CsvError", "Label")


def test_one_csv_reader_one_label_reader_one_time_rule() -> None:
    readers: dict[str, set[str]] = {}
    for path, tree in _modules():
        for call in _calls(tree):
            if call in ("csv.reader", "csv.DictReader", "datetime.fromisoformat", "dt.datetime.fromisoformat"):
                readers.setdefault(call.rsplit(".", 2)[-1] if "iso" in call else call, set()).add(str(path))
    assert readers == {
        "csv.reader": {"monitor/wire/csvfile.py"},
        # labels, and the outputs' scores.csv (written and read back by monitor/result_files.py, its one owner)
        "csv.DictReader": {"monitor/wire/labels.py", "monitor/result_files.py"},
        "fromisoformat": {"monitor/wire/timestamps.py"},
    }
    defined = {
        (str(path), node.name)
        for path, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name in READER_NAMES
    }
    assert defined == {
        ("monitor/wire/csvfile.py", "read_csv"),
        ("monitor/wire/csvfile.py", "read_table"),
        ("monitor/wire/csvfile.py", "CsvError"),
        ("monitor/wire/labels.py", "read_labels"),
        ("monitor/wire/labels.py", "Label"),
    }


def test_topic_defaults_and_the_payload_schema_are_written_once() -> None:
    templates: set[str] = set()
    schemas: set[str] = set()
    for path, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in (READINGS_TOPIC, SENSOR_TOPIC):
                templates.add(f"{path}:{node.value}")
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id.endswith("SCHEMA") for t in node.targets
            ):
                schemas.add(str(path))
    # benchmarks/ and tests/ build their own topics for their own brokers; the product defines each template once
    assert {t for t in templates if not t.startswith("benchmarks/")} == {
        f"monitor/wire/topics.py:{READINGS_TOPIC}",
        f"monitor/wire/topics.py:{SENSOR_TOPIC}",
    }
    assert schemas == {"monitor/wire/payloads.py"}
