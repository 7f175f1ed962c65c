from auth.roles import Role
from tests.support.factories import make_account, make_unit, sign_in


async def test_admin_signs_in_with_totp_and_reads_own_profile(client):
    unit = await make_unit()
    admin = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    headers = await sign_in(client, admin)
    response = await client.get("/v1/auth/me", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["username"] == admin.username
    assert "users:write" in response.json()["permissions"]
