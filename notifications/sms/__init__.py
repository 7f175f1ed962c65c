"""SMS as an emergency fallback only (D-31): the ledger, daily caps, degraded mode, the
fallback sweep and the sender. See docs/sms.md."""
