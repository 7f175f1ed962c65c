"""Which certificate authorities the provider clients trust."""

from __future__ import annotations

import ssl


def provider_ssl_context(ca_file: str | None, *, alpn: list[str] | None = None) -> ssl.SSLContext:
    """The system store, plus ``ca_file`` when one is configured (``provider_ca_file``).

    The CA is loaded explicitly rather than through ``SSL_CERT_FILE``/``REQUESTS_CA_BUNDLE``, so
    an environment variable can neither add it by accident nor take the system store away.
    """
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    if alpn:
        context.set_alpn_protocols(alpn)
    return context
