"""Rate limits (D-41). PLACEHOLDER: being implemented with the `limits` library on Redis."""

from __future__ import annotations


async def enforce_ip(ip: str) -> None:
    return None


async def enforce_login(ip: str) -> None:
    return None


async def enforce_account(user_id: str) -> None:
    return None


async def enforce_client(client_id: str) -> None:
    return None
