"""Tracking app: tasks, KPIs, deadline status and the reminder policy (docs/tracking.md)."""
