"""Tamper-evident audit log (D-25): append-only rows chained by HMAC, written in the same
transaction as the change they describe."""

from auth.audit.writer import record, record_detached

__all__ = ["record", "record_detached"]
