"""A refused form said in words, next to the form it came from (the units, sections and calendar
pages): which field, and what is wrong with it — too long, missing, characters not allowed, out
of range — in the reader's language, never echoing the value. The form is shown again with what
was typed, so a clumsy operator corrects one field instead of starting over.

Only refusals that come before anything is written are shown this way (the API's request models,
a unique code refused inside its savepoint); anything else goes to the error page as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from console.i18n import gettext
from core.types import EARLIEST_YEAR, LATEST_YEAR


def _(message: str) -> str:
    """Marks a label for extraction; translated when shown."""
    return message


FIELDS = {
    "code": _("Code"),
    "name": _("Name"),
    "kind": _("Kind"),
    "parent_id": _("Parent unit"),
    "names": _("Names"),
    "position": _("Position in the list"),
    "day": _("Day"),
    "note": _("Reason"),
    "reason": _("Reason"),
}


def describe(exc: ValidationError, fields: Mapping[str, str] = FIELDS) -> str:
    """One sentence per refused field, in the order the model checked them."""
    said: list[str] = []
    for error in exc.errors():
        sentence = _sentence(error, fields)
        if sentence not in said:
            said.append(sentence)
    return " ".join(said)


def _sentence(error: Mapping[str, Any], fields: Mapping[str, str]) -> str:
    loc = [str(part) for part in error.get("loc", ()) if not isinstance(part, int)]
    key = loc[0] if loc else ""
    label = gettext(fields[key]) if key in fields else key
    if key == "names" and len(loc) > 1:
        label = f"{label} ({loc[1]})"
    kind = str(error.get("type", ""))
    context: Mapping[str, Any] = error.get("ctx") or {}
    if kind == "string_too_long":
        return gettext("%(field)s is too long: at most %(max)s characters.") % {
            "field": label,
            "max": context.get("max_length", "?"),
        }
    if kind in ("string_too_short", "missing") and context.get("min_length", 1) <= 1:
        return gettext("%(field)s is required.") % {"field": label}
    if kind == "string_too_short":
        return gettext("%(field)s is too short: at least %(min)s characters.") % {
            "field": label,
            "min": context.get("min_length", "?"),
        }
    if kind == "string_pattern_mismatch" and key == "code":
        return gettext(
            "%(field)s may hold only unaccented Latin letters, digits, dot, dash and underscore, without"
            " spaces."
        ) % {"field": label}
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return gettext("%(field)s is out of range.") % {"field": label}
    if key == "day":
        return gettext("%(field)s must be a date between the years %(first)s and %(last)s.") % {
            "field": label,
            "first": EARLIEST_YEAR,
            "last": LATEST_YEAR,
        }
    if key == "" and "Vietnamese" in str(error.get("msg", "")):
        return gettext("The Vietnamese name is required.")
    return gettext("%(field)s is not valid.") % {"field": label}
