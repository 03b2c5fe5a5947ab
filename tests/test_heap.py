"""``serve`` and ``worker`` freeze their start-up objects once running (connectzap.core.heap): the
garbage collector's full passes then walk only what the process made since."""

from __future__ import annotations

import gc
import json
import os
import weakref
from pathlib import Path
from typing import Any

from serve_support import Served, sandbox_serve_config, wait_for

from connectzap.core import heap


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_settle_collects_what_start_up_dropped_and_freezes_what_it_keeps() -> None:
    dropped_a, dropped_b = _Node(), _Node()
    dropped_a.other, dropped_b.other = dropped_b, dropped_a  # a cycle: only the collector frees it
    gone = weakref.ref(dropped_a)
    del dropped_a, dropped_b
    kept = _Node()
    kept.other = kept
    try:
        frozen = heap.settle()
        assert gone() is None  # collected, not frozen for the process's life
        assert frozen > 0  # (not compared with a later count: a frozen object freed since lowers it)
        assert not any(o is kept for o in gc.get_objects())  # out of the collector's generations
        made_after = _Node()
        assert any(o is made_after for o in gc.get_objects())
    finally:
        gc.unfreeze()  # this test process goes on as before


def test_serve_and_its_worker_processes_freeze_once_started(tmp_path: Path) -> None:
    config = sandbox_serve_config(tmp_path, f"sqlite:///{tmp_path / 'connectzap.db'}")
    env = {**os.environ, "CONNECTZAP_LOAD_PLUGINS": ""}
    # One edge and one worker process under the supervisor: each says it froze its start-up objects.
    served = Served(config, env, options=("--edge-processes", "1", "--workers", "1", "--log-level", "debug",
                                          "--log-format", "json"))
    try:
        served.url()

        def said(message: str) -> list[dict[str, Any]]:
            return [r for r in map(json.loads, list(served.output)) if message in r["message"]]

        frozen = wait_for(lambda: len(said("start-up objects frozen")) == 2 and said("start-up objects frozen"),
                          "both processes to freeze", 60)
        started = {r["message"].split()[0]: int(r["message"].split("pid ")[1].rstrip(")"))
                   for r in said(" started (pid ")}
        assert sorted(r["pid"] for r in frozen) == sorted([started["edge"], started["worker"]])
        assert all(r["objects"] > 10_000 for r in frozen)  # the engine, its plugins, the libraries
    finally:
        assert served.stop() == 0
