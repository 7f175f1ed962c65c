"""Connected systems (D-40). PLACEHOLDER: being implemented (authenticate, create, rotate, suspend)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from auth.models import ApiClient
from core.errors import Unauthorized

KEY_PREFIX = "chk_"


async def authenticate(session: AsyncSession, *, key: str, ip: str) -> tuple[ApiClient, str]:
    raise Unauthorized("Invalid API key", code="invalid_api_key")
