"""Spellings of codes for the input-normalisation tests (issue 12 item 10, core/codes.py)."""

from __future__ import annotations

from sqlalchemy import select

from auth.models import User
from auth.totp import code_for
from core import clock
from core.db import transaction
from tests.support.factories import Account

ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
EXTENDED_ARABIC = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
DEVANAGARI = str.maketrans("0123456789", "०१२३४५६७८९")
FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")

# What a person may type for a right code: each is the code once folded.
ACCEPTED = {
    "fullwidth": lambda code: code.translate(FULLWIDTH),
    "superscript": lambda code: code.translate(SUPERSCRIPT),
    "spaced": lambda code: f" {code[:3]} {code[3:]}\t",
    "half fullwidth": lambda code: code[:3] + code[3:].translate(FULLWIDTH),
}
# Never a code of ours, however right the digits.
REFUSED = {
    "arabic-indic": lambda code: code.translate(ARABIC_INDIC),
    "extended arabic-indic": lambda code: code.translate(EXTENDED_ARABIC),
    "devanagari": lambda code: code.translate(DEVANAGARI),
    "mixed scripts": lambda code: code[:3] + code[3:].translate(ARABIC_INDIC),
    "nul": lambda code: code[:3] + "\x00" + code[3:],
    "letters": lambda code: "12345a",
}


async def failed_attempts(account: Account) -> int:
    async with transaction() as session:
        return (await session.execute(select(User.failed_attempts).where(User.id == account.id))).scalar_one()


def current_code(account: Account) -> str:
    assert account.totp_secret is not None
    clock.advance(30)  # a step not used yet
    return code_for(account.totp_secret, at=clock.utcnow())
