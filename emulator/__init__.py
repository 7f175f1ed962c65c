"""Local provider emulator: FCM HTTP v1 (+ OAuth2 token endpoint) and APNs HTTP/2.

Development and test tooling, not shipped. The real client libraries (firebase-admin, aioapns)
talk to it over TLS with a CA made at start-up; the app reaches it through its ordinary endpoint
and credential settings (`Emulator.app_settings()`), bare clients through `emulator.clients`.
Start it with `python -m emulator` or in-process with `async with Emulator(EmulatorConfig(...))`.
"""

from emulator.faults import FaultKind, FaultSettings
from emulator.server import Emulator, EmulatorConfig, main

__all__ = ["Emulator", "EmulatorConfig", "FaultKind", "FaultSettings", "main"]
