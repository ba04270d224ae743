"""A pytest plugin: CPU seconds per test, which do not depend on how loaded the machine is.

    CPU_TIMES_OUT=times.jsonl PYTHONPATH=src:benchmarks .venv/bin/python -m pytest tests/test_x.py -p pytest_cpu_times

Appends one JSON line per test to $CPU_TIMES_OUT: its id, the CPU seconds of this process and
of the child processes it waited for (`resource.getrusage`) over setup, call and teardown,
and the wall seconds. Compare two trees by running the same files in each, back to back.
"""

from __future__ import annotations

import json
import os
import resource
import time

import pytest


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    cpu, wall = _cpu_seconds(), time.time()
    yield
    with open(os.environ["CPU_TIMES_OUT"], "a", encoding="utf-8") as f:
        f.write(json.dumps({"id": item.nodeid, "cpu": round(_cpu_seconds() - cpu, 3), "wall": round(time.time() - wall, 3)}) + "\n")
