"""The states of a notification that a module below the use cases needs to know (fan-out,
send pipeline, reconciler, stats), kept apart so that none of them imports another for them."""

from __future__ import annotations

# A notification in one of these is finished: no fan-out page or send batch starts any more.
FINAL_STATUSES = frozenset({"completed", "expired", "cancelled"})
