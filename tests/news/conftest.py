"""Breaking-news tests reuse the delivery pipeline's in-process emulator fixtures."""

from tests.notifications.conftest import emulated_settings, emulator, providers, worker_ctx

__all__ = ["emulated_settings", "emulator", "providers", "worker_ctx"]
