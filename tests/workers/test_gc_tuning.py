"""A worker tunes the cyclic collector once started (workers/gc_tuning.py): its start-up heap is
frozen out of the collections' reach and young collections are rarer; reference cycles are still
collected."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from workers.gc_tuning import YOUNG_THRESHOLD, tune_for_a_long_lived_process


@pytest.fixture
def restored_collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_start_up_objects_are_frozen_and_cycles_still_collected(restored_collector):
    started_with = object.__new__(_Node)  # something start-up made, alive for the process
    tune_for_a_long_lived_process()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    assert all(started_with is not tracked for tracked in gc.get_objects(generation=2))

    # A reference cycle made afterwards is garbage the collector still finds.
    first, second = _Node(), _Node()
    first.other, second.other = second, first
    gone = weakref.ref(first)
    del first, second
    gc.collect()
    assert gone() is None
