"""Rotating the field-encryption key (core/field_rotation.py): data encrypted with key A stays
readable once key B is put first, a rotation re-encrypts every value under B, after which B alone
opens everything (A may go); the rotation is idempotent, resumable, never overwrites an edit made
meanwhile and leaves a value that no key opens as it is."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import LargeBinary, select, text

import cli.models  # noqa: F401  (every table, so every encrypted column, on Base.metadata)
from auth.models import User
from auth.roles import Role
from core.crypto import decrypt_text, encrypt_text
from core.db import Base, transaction
from core.field_rotation import ColumnTally, _compare_and_set, encrypted_columns, rotate_column
from tests.keys.conftest import UseKeys
from tests.support.factories import Account, make_account, make_unit, sign_in

ENCRYPTED = {"users.phone_enc", "users.citizen_id_enc", "totp_credentials.secret_enc"}


# Binary columns that hold no secret, so nothing to encrypt or rotate, and why.
PLAIN_BINARY = {
    # A passkey's public key (COSE): public by definition, and the signature check reads it as is.
    "webauthn_credentials.public_key",
    # Its credential id: chosen by the authenticator and sent by the browser in every ceremony;
    # looked up by equality, which an encryption with a random nonce would make impossible.
    "webauthn_credentials.credential_id",
}


def test_every_encrypted_column_is_marked() -> None:
    """Every binary column holds encrypt_text output and is marked, or a rotation would skip it,
    unless it is listed above as holding no secret."""
    marked = {column.name for column in encrypted_columns(Base.metadata)}
    binary = {
        f"{table.name}.{column.name}"
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, LargeBinary)
    }
    assert binary >= PLAIN_BINARY  # a listed column that is gone must leave the list too
    assert marked == binary - PLAIN_BINARY == ENCRYPTED


async def personal_data(account: Account, *, phone: str, citizen_id: str) -> None:
    async with transaction() as session:
        user = await session.get(User, account.id)
        assert user is not None
        user.phone_enc = encrypt_text(phone)
        user.citizen_id_enc = encrypt_text(citizen_id)


async def make_people(count: int) -> list[Account]:
    unit = await make_unit()
    accounts = []
    for index in range(count):
        account = await make_account(role=Role.EDITOR, unit=unit)
        await personal_data(account, phone=f"09123456{index:02d}", citizen_id=f"0010990000{index:02d}")
        accounts.append(account)
    return accounts


async def rotate_all(*, write: bool = True, batch_size: int = 3) -> dict[str, ColumnTally]:
    return {
        column.name: await rotate_column(column, write=write, batch_size=batch_size)
        for column in encrypted_columns(Base.metadata)
    }


async def stored_values() -> list[bytes]:
    async with transaction() as session:
        rows = await session.execute(
            text(
                "SELECT phone_enc AS v FROM users WHERE phone_enc IS NOT NULL "
                "UNION ALL SELECT citizen_id_enc FROM users WHERE citizen_id_enc IS NOT NULL "
                "UNION ALL SELECT secret_enc FROM totp_credentials"
            )
        )
        return [bytes(row.v) for row in rows]


async def test_after_a_rotation_key_b_alone_opens_everything(
    database_url, redis, client, use_keys: UseKeys, key_a, key_b
) -> None:
    use_keys(key_a)
    people = await make_people(7)  # 7 phones, 7 citizen ids, 7 TOTP secrets: batches of 3
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=await make_unit())
    before = await stored_values()
    assert len(before) == 22  # the admin's TOTP secret too

    use_keys(key_b, key_a)  # B first: new writes use B, A still opens the old values
    headers = await sign_in(client, people[0])  # TOTP check: decrypts an A value
    tallies = await rotate_all()

    assert {name: (t.examined, t.old_key, t.rewritten, t.unreadable) for name, t in tallies.items()} == {
        "users.phone_enc": (7, 7, 7, 0),
        "users.citizen_id_enc": (7, 7, 7, 0),
        "totp_credentials.secret_enc": (8, 8, 8, 0),
    }
    only_b = Fernet(key_b)
    after = await stored_values()
    assert sorted(only_b.decrypt(value) for value in after) == sorted(
        Fernet(key_a).decrypt(v) for v in before
    )

    use_keys(key_b)  # A removed
    admin_headers = await sign_in(client, admin)
    shown = await client.get(f"/v1/users/{people[6].id}", headers=admin_headers)
    assert shown.status_code == 200, shown.text
    assert (shown.json()["phone"], shown.json()["citizen_id"]) == ("0912345606", "001099000006")
    assert (await client.get("/v1/auth/me", headers=headers)).status_code == 200
    await sign_in(client, people[1])

    again = await rotate_all()  # idempotent: nothing left to do
    assert all(t.rewritten == 0 and t.current == t.examined for t in again.values())


async def test_a_rotation_stopped_halfway_finishes_on_the_next_run(
    database_url, use_keys: UseKeys, key_a, key_b
):
    use_keys(key_a)
    await make_people(5)
    use_keys(key_b, key_a)
    [phones] = [c for c in encrypted_columns(Base.metadata) if c.name == "users.phone_enc"]

    def stop_after_the_first_batch(column: str, examined: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await rotate_column(phones, write=True, batch_size=2, progress=stop_after_the_first_batch)

    halfway = await rotate_column(phones, write=False)
    assert (halfway.current, halfway.old_key) == (2, 3)  # the first batch committed, the rest not
    resumed = await rotate_column(phones, write=True, batch_size=2)
    assert (resumed.current, resumed.rewritten) == (2, 3)
    assert (await rotate_column(phones, write=False)).old_key == 0


async def test_a_value_changed_meanwhile_is_not_overwritten(
    database_url, use_keys: UseKeys, key_a, key_b
) -> None:
    use_keys(key_a)
    [person] = await make_people(1)
    [phones] = [c for c in encrypted_columns(Base.metadata) if c.name == "users.phone_enc"]
    async with transaction() as session:
        read = (await session.execute(select(User.phone_enc).where(User.id == person.id))).scalar_one()
    assert read is not None
    use_keys(key_b, key_a)
    # The service writes a new number (under B) between the rotation's read and its write.
    await personal_data(person, phone="0987654321", citizen_id="001099000000")
    stale = _compare_and_set(phones, [(person.id, read, Fernet(key_b).encrypt(b"0912345600"))])

    async with transaction() as session:
        assert (await session.execute(stale)).all() == []
        now = (await session.execute(select(User.phone_enc).where(User.id == person.id))).scalar_one()
    assert now is not None and decrypt_text(now) == "0987654321"


async def test_a_value_no_key_opens_is_counted_and_left_alone(database_url, use_keys: UseKeys, key_a, key_b):
    use_keys(key_a)
    [person] = await make_people(1)
    lost = Fernet(Fernet.generate_key()).encrypt(b"0900000000")  # its key is gone
    async with transaction() as session:
        await session.execute(
            text("UPDATE users SET phone_enc = :lost WHERE id = :id"), {"lost": lost, "id": person.id}
        )
    use_keys(key_b, key_a)

    tallies = await rotate_all()

    assert (tallies["users.phone_enc"].unreadable, tallies["users.phone_enc"].rewritten) == (1, 0)
    assert tallies["users.citizen_id_enc"].rewritten == 1
    async with transaction() as session:
        kept = (await session.execute(select(User.phone_enc).where(User.id == person.id))).scalar_one()
    assert kept == lost


def test_columns_without_a_one_column_key_are_refused() -> None:
    from sqlalchemy import Column, Integer, MetaData, Table

    from core.crypto import FIELD_ENCRYPTED

    metadata = MetaData()
    Table(
        "pairs",
        metadata,
        Column("a", Integer, primary_key=True),
        Column("b", Integer, primary_key=True),
        Column("secret_enc", LargeBinary, info={FIELD_ENCRYPTED: True}),
    )
    with pytest.raises(ValueError, match="one-column key"):
        encrypted_columns(metadata)
