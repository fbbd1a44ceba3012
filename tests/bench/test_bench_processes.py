"""The benchmarks' view of a service that runs as several processes: the tree, its PSS / RSS, libtorch in it.

Real processes (a parent with a child and a grandchild; one that imports torch, one that does not), read from
/proc as the benchmarks read the service; no timings.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import timeit
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks._harness import (
    _children_by_scan,
    _children_listed,
    describe_process,
    maps_libtorch,
    process_tree,
    pss_mb,
    tree_memory,
)
from tests.kit import wait_until

# A parent that starts a child that starts a grandchild, each printing its pid, then all sleeping until killed.
_TREE = """
import subprocess, sys, time
depth = int(sys.argv[1])
print(__import__("os").getpid(), flush=True)
if depth > 0:
    child = subprocess.Popen([sys.executable, "-c", sys.argv[2], str(depth - 1), sys.argv[2]], stdout=sys.stdout)
time.sleep(600)
"""


def _kill(proc: subprocess.Popen[str]) -> None:
    # the whole tree, youngest first: a killed parent does not take its children with it
    for pid in reversed(process_tree(proc.pid)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(10)


@pytest.fixture
def three_generations() -> Iterator[tuple[subprocess.Popen[str], list[int]]]:
    proc = subprocess.Popen([sys.executable, "-c", _TREE, "2", _TREE], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    pids = [int(proc.stdout.readline()) for _ in range(3)]
    try:
        yield proc, pids
    finally:
        _kill(proc)
        proc.stdout.close()


def test_process_tree_is_the_process_and_every_descendant(three_generations) -> None:
    proc, pids = three_generations
    assert pids[0] == proc.pid
    assert process_tree(proc.pid) == pids  # children before grandchildren
    assert process_tree(pids[1]) == pids[1:]
    assert process_tree(pids[2]) == pids[2:]


def test_both_ways_of_finding_children_agree(three_generations) -> None:
    _, pids = three_generations
    for parent, child in itertools.pairwise(pids):
        assert _children_by_scan(parent) == [child]
        listed = _children_listed(parent)
        assert listed is None or listed == [child]  # None: a kernel without /proc/PID/task/*/children
    assert _children_by_scan(pids[2]) == []


def test_tree_memory_sums_the_processes(three_generations) -> None:
    proc, pids = three_generations
    mem = tree_memory(proc.pid)
    assert [p.pid for p in mem.processes] == pids
    assert [p.ppid for p in mem.processes[1:]] == pids[:2]
    for p in mem.processes:
        assert 0 < p.pss_mb <= p.rss_mb <= p.peak_rss_mb
        assert not p.libtorch
        assert p.name.startswith("python")
    assert mem.pss_mb == pytest.approx(sum(p.pss_mb for p in mem.processes))
    assert mem.rss_mb == pytest.approx(sum(p.rss_mb for p in mem.processes))
    # three copies of one interpreter share their code pages: PSS counts them once, RSS three times
    assert mem.pss_mb < mem.rss_mb
    assert not mem.libtorch and mem.libtorch_pids() == []
    assert mem.as_dict()["processes"][0]["pid"] == proc.pid
    assert str(proc.pid) in mem.per_process()


def test_a_process_that_imported_torch_is_seen_mapping_libtorch() -> None:
    code = "import torch, sys; print('up', flush=True); sys.stdin.read()"
    with subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as p:
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "up"
        try:
            assert maps_libtorch(p.pid)
            mem = tree_memory(p.pid)
            assert mem.libtorch and mem.libtorch_pids() == [p.pid]
            assert pss_mb(p.pid) > 0
        finally:
            p.communicate("")


def test_a_tree_that_ends_meanwhile_is_reported() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(30)
    assert process_tree(proc.pid) == []
    with pytest.raises(RuntimeError, match="not running"):
        tree_memory(proc.pid)


def test_describe_names_multiprocessing_helpers_and_leaves_the_interpreter_out() -> None:
    sleep = "import time; time.sleep(60)"
    tracker = subprocess.Popen([sys.executable, "-c", sleep, "from multiprocessing.resource_tracker import main"])
    module = subprocess.Popen([sys.executable, "-m", "timeit", "-n", "1", sleep])
    script = subprocess.Popen([sys.executable, timeit.__file__, "-n", "1", sleep])
    try:
        for proc in (tracker, module, script):  # the command line is there once exec has happened
            assert wait_until(lambda p=proc: Path(f"/proc/{p.pid}/cmdline").read_bytes().count(b"\0") >= 4, 10)
        assert describe_process(tracker.pid) == "multiprocessing resource tracker"
        assert describe_process(module.pid) == "timeit -n 1"
        assert describe_process(script.pid) == "timeit.py -n 1"
    finally:
        for proc in (tracker, module, script):
            proc.kill()
            proc.wait(10)
