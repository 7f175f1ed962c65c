"""Links that travel to a phone, the inbox or the console (issue 12, item 7).

A link in a push or an inbox item is opened by the app with the privileges of the app, and a
link shown in the console is clicked by an editor signed in to it: ``javascript:``, ``data:`` or a
look-alike host there is an attack, not a typo. So a link is accepted only if it is

- one of the apps' own schemes (``deep_link_schemes``, e.g. ``chuong-portal://article/123``), or
- ``https://`` to a configured host (``deep_link_hosts``: ``dangcongsan.vn`` is that host only,
  ``*.dangcongsan.vn`` any of its subdomains, never the apex by accident),

and in both cases written plainly: printable ASCII only (no whitespace, control characters,
backslashes or raw non-ASCII; percent-escapes are fine in the path and query), no userinfo
(``https://dangcongsan.vn@evil.example``), no port, a host of plain DNS labels (no percent
escapes, no IDN ``xn--`` labels that can imitate an allowed name). The URL is parsed with
``urllib.parse`` and the *parsed* scheme and host are checked, never a prefix of the string.
The scheme is returned in lower case (Android matches intent-filter schemes case-sensitively).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, StringConstraints

from core.config import get_settings

MAX_LINK_LENGTH = 2048  # the deep_link / image_url columns are VARCHAR(2048)
# RFC 3986 characters plus "%" escapes: printable ASCII without space, backslash, ", <>^`{|}.
_PLAIN = re.compile(r"^[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+$")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
# Schemes a browser or an OS would run or open locally: never an app scheme, whatever is configured.
UNSAFE_SCHEMES = frozenset(
    {"javascript", "vbscript", "data", "file", "blob", "about", "filesystem", "intent", "content", "http"}
)


def _host_allowed(host: str, allowed: Iterable[str]) -> bool:
    for entry in allowed:
        entry = entry.lower()
        if entry.startswith("*."):
            if host.endswith(entry[1:]) and host != entry[2:]:
                return True
        elif host == entry:
            return True
    return False


def check_link(value: str, *, https_only: bool = False) -> str:
    """``value`` if it is a safe link (scheme lower-cased); ValueError saying why otherwise.
    ``https_only``: for images and other things fetched over the network, no app scheme."""
    settings = get_settings()
    if len(value) > MAX_LINK_LENGTH:
        raise ValueError(f"the link is longer than {MAX_LINK_LENGTH} characters")
    if not _PLAIN.fullmatch(value):
        raise ValueError(
            "the link may contain only printable ASCII without spaces, backslashes or quotes "
            "(percent-encode anything else)"
        )
    try:
        parts = urlsplit(value)
        port = parts.port  # raises on a malformed port
    except ValueError:
        raise ValueError("the link is not a valid URL") from None
    scheme = parts.scheme.lower()
    app_schemes = {s.lower() for s in settings.deep_link_schemes} - UNSAFE_SCHEMES - {"https"}
    if scheme != "https" and (https_only or scheme not in app_schemes):
        allowed = ["https"] if https_only else [*sorted(app_schemes), "https"]
        raise ValueError(f"the link's scheme must be one of: {', '.join(allowed)}")
    if value[: len(scheme) + 3].lower() != f"{scheme}://":
        raise ValueError("the link must start with scheme:// (e.g. chuong-portal://article/123)")
    netloc = parts.netloc
    if "@" in netloc:
        raise ValueError("the link must not contain a user name or password before the host")
    if port is not None or netloc.endswith(":"):
        raise ValueError("the link must not name a port")
    if scheme == "https":
        host = (parts.hostname or "").lower()
        if not _HOST.fullmatch(host) or any(label.startswith("xn--") for label in host.split(".")):
            raise ValueError("the link's host must be a plain domain name")
        if not _host_allowed(host, settings.deep_link_hosts):
            raise ValueError(
                f"https links may point only to {', '.join(settings.deep_link_hosts) or 'no host'}"
            )
    elif not netloc and not parts.path.strip("/"):
        raise ValueError("the link names no screen of the app")
    return scheme + value[len(scheme) :]


def safe_link(value: str | None, *, https_only: bool = False) -> str | None:
    """A stored link, or None if it does not pass today's rules (rows written before the rule,
    or a host removed from the settings since): a link that no longer passes is not sent."""
    if value is None:
        return None
    try:
        return check_link(value, https_only=https_only)
    except ValueError:
        return None


def check_https_link(value: str) -> str:
    return check_link(value, https_only=True)


# For request models: the length bound first (no parsing of megabytes), then the rules above.
DeepLink = Annotated[str, StringConstraints(max_length=MAX_LINK_LENGTH), AfterValidator(check_link)]
HttpsLink = Annotated[str, StringConstraints(max_length=MAX_LINK_LENGTH), AfterValidator(check_https_link)]
