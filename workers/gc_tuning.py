"""The cyclic garbage collector, tuned for a sending worker (issue 16).

A worker's heap after start-up is ~190,000 tracked objects (every module, the settings, the
engine, the routes), all of them living as long as the process, and a send batch allocates
tens of thousands of short-lived ones (rows, requests, results, futures). With CPython's defaults
(700, 10, 10) the collector ran ~75 young collections per 1,000 deliveries and a full collection
every ~1,500 deliveries that walked the whole start-up heap again: measured on the development
machine, about as much CPU as the provider client itself (docs/benchmarks.md, "The pipeline's own
work"). So, once start-up is done:

* ``gc.freeze()``: what start-up made moves to the permanent generation, which no collection
  walks (CPython's advice for long-lived processes); full collections walk only what the jobs
  made since.
* a young-generation threshold of 20,000 net allocations instead of 700: a batch's objects are
  freed by reference counting when it ends, so most of them are gone before a collection would
  have walked them; what the collector is for (reference cycles) is still found, at most 20,000
  allocations later.

Reference counting frees everything else as before; only cyclic garbage waits a little longer.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000


def tune_for_a_long_lived_process() -> None:
    """Call once start-up is done (and again after a restart of the worker loop: harmless)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
