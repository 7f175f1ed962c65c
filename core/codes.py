"""One rule for the codes, numbers and identifiers people type or paste (docs/security.md,
"Input normalisation").

**The rule.** Fold the input with Unicode NFKC, drop the separators its format allows (white
space; for grouped codes also hyphens), then require plain ASCII from the format's own alphabet.
Anything else is malformed: 422 at the API's schema edge, a wrong code (counted as a failure
where failures are counted) in the console and in the domain functions. Nothing raises.

Why NFKC and then ASCII: NFKC turns compatibility forms into the characters they stand for, so
fullwidth ``１２３４５６`` (a CJK keyboard) and superscript ``¹²³`` become ``123456`` / ``123``
and the person gets what they meant. It leaves other scripts' digits alone (Arabic-Indic
``٠١٢``, Devanagari ``०१२`` …): they are different characters, and the ASCII check refuses them.
Python's own predicates are no guard: ``str.isdigit()`` is true for all of these (and for
``²``, which ``int()`` then rejects with ValueError), ``int()`` and ``re``'s ``\\d`` accept every
script's digits, and ``hmac.compare_digest`` raises TypeError on a non-ASCII ``str``.

Secrets compared as opaque tokens (refresh tokens, API keys, device credentials) are *not*
folded: they are matched exactly, by keyed hash, and a non-ASCII one simply matches nothing.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator

ASCII_DIGITS = re.compile(r"[0-9]+")


def fold(value: str) -> str:
    """NFKC: compatibility forms (fullwidth, superscript, circled …) become their ASCII twins."""
    return unicodedata.normalize("NFKC", value)


def fold_code(value: str, *, drop: str = "") -> str:
    """``value`` folded, without white space (people type "123 456") nor the ``drop`` characters."""
    return "".join(ch for ch in fold(value) if not ch.isspace() and ch not in drop)


def ascii_digits(value: str, *, drop: str = "") -> str | None:
    """``value`` as ASCII digits ("０１２ ３４５" → "012345"), or None when it is anything else."""
    folded = fold_code(value, drop=drop)
    return folded if ASCII_DIGITS.fullmatch(folded) else None


def parse_ascii_int(value: str, *, maximum: int) -> int | None:
    """A non-negative integer written in ASCII digits and at most ``maximum``, else None: for
    cursors and headers, where ``value.isdigit()`` then ``int(value)`` raises on ``"²"``."""
    if not ASCII_DIGITS.fullmatch(value) or len(value) > len(str(maximum)):
        return None
    number = int(value)
    return number if number <= maximum else None


def _folded(value: str) -> str:
    return fold(value)


def ascii_code(value: str, *, alphabet: re.Pattern[str], drop: str = "") -> str | None:
    """``value`` folded and stripped of separators if it is made of ``alphabet`` (an ASCII class
    such as ``[A-Z0-9]+``), else None."""
    folded = fold_code(value, drop=drop)
    return folded if folded.isascii() and alphabet.fullmatch(folded) else None


# Free text that names an ASCII identifier (a sign-in name): folded so that a fullwidth
# "ｅｄｉｔｏｒ" finds "editor"; whatever is left outside ASCII simply matches nothing.
FoldedName = Annotated[str, AfterValidator(_folded)]


def digit_code(*, min_length: int, max_length: int, drop: str = "") -> AfterValidator:
    """The validator of an Annotated code type: ``Annotated[str, digit_code(min_length=6, …)]``."""

    def validate(value: str) -> str:
        digits = ascii_digits(value, drop=drop)
        if digits is None:
            raise ValueError("must be ASCII digits 0-9")
        if not min_length <= len(digits) <= max_length:
            raise ValueError(f"must be {min_length}–{max_length} digits")
        return digits

    return AfterValidator(validate)
