"""The providers' request latency, measured by each transport around one request: FCM HTTP v1
over HTTP/1.1 (fcm_http1.py) and APNs (apns.py). firebase-admin's own transport (fcm.py, the
``firebase_admin`` setting) sends up to 500 messages in one call and is not measured per request.

Each provider binds its child once (its provider key, as ``dispatch.provider_key`` names it), so a
request costs one ``observe`` and no label lookup."""

from __future__ import annotations

from prometheus_client import Histogram

PROVIDER_LATENCY = Histogram(
    "chuong_push_provider_request_duration_seconds",
    "Time from sending one push request to the provider's answer (or the transport's error)",
    ["provider"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
