"""The console's heap while an index loads (core/heap.py): no full garbage collection
while a load runs (nested loads too), the collector as it was after, even when the load
fails; the pages freed objects leave behind given back to the system."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from core import heap


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture
def full_collections():
    started: list[int] = []

    def seen(phase, info) -> None:
        if phase == "start" and info["generation"] == 2:
            started.append(1)

    gc.callbacks.append(seen)
    try:
        yield started
    finally:
        gc.callbacks.remove(seen)


def test_no_full_collection_runs_while_a_load_does(full_collections):
    before = gc.get_threshold()
    with heap.loading():
        with heap.loading():  # users loading while the customers do
            kept = [[i] for i in range(400_000)]  # what a load keeps: survivors that would trigger one
        kept += [[i] for i in range(400_000)]
        assert full_collections == []
    assert gc.get_threshold() == before
    kept += [[i] for i in range(400_000)]  # no load: the postponed collection comes
    assert full_collections


def test_the_threshold_comes_back_when_a_load_fails():
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), heap.loading():
        assert gc.get_threshold()[2] > 10**6
        raise RuntimeError("the reader died")
    assert gc.get_threshold() == before


def test_freed_pages_are_given_back():
    blocks = [bytes(2000) + bytes([i % 256]) for i in range(60_000)]  # ~120 MB from malloc's heap
    last = bytes(4000) + b"!"  # after them, too big for their holes: the heap's top stays in use
    del blocks
    freed = _rss_kb()  # glibc keeps the freed pages below the top
    heap.give_back()
    assert _rss_kb() < freed - 50_000, (freed, _rss_kb())
    del last
