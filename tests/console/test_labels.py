"""Stored enum values and the services' common messages read as words in the reader's language."""

from __future__ import annotations

import pytest

from auth.roles import Role
from console import i18n, labels
from console.routes.news import STATUSES
from tests.support.factories import make_account, make_unit


@pytest.fixture
def vietnamese():  # type: ignore[no-untyped-def]
    i18n.set_language("vi")
    yield
    i18n.set_language("vi")


def test_every_role_and_news_status_has_a_vietnamese_label(vietnamese):
    assert set(labels.ROLES) == {role.value for role in Role}
    assert set(STATUSES) <= set(labels.NEWS_STATUSES)
    for table, label in [
        (labels.ROLES, labels.role_label),
        (labels.NEWS_STATUSES, labels.news_status_label),
        (labels.PRIORITIES, labels.priority_label),
        (labels.OUTCOMES, labels.outcome_label),
        (labels.ACTOR_KINDS, labels.actor_kind_label),
    ]:
        for value in table:
            shown = label(value)
            assert shown not in (value, table[value]), f"{value} is not translated"
    assert labels.role_label(Role.EDITOR) == "Biên tập viên"  # an enum member, not only its value
    assert labels.news_status_label("submitted") == "Chờ duyệt"
    assert labels.role_label("brand_new_role") == "brand_new_role"  # unknown: shown, not a 500
    i18n.set_language("en")
    assert labels.role_label("system_admin") == "System admin"


def test_service_messages_are_translated_when_known(vietnamese):
    assert labels.service_message("You do not have permission") == "Bạn không có quyền thực hiện việc này"
    assert labels.service_message("Something only the API says") == "Something only the API says"
    assert labels.error_kind(403) == "Không có quyền truy cập."
    assert labels.error_kind(418) == i18n.gettext("Something went wrong.")


async def test_the_access_denied_page_is_vietnamese_with_the_code_for_the_help_desk(console):
    from tests.console.support import console_sign_in

    unit = await make_unit()
    member = await make_account(role=Role.MEMBER, unit=unit, enrolled=False)
    await console_sign_in(console, member)
    page = await console.get("/console/admin/users")
    assert page.status_code == 403
    assert "Không có quyền truy cập." in page.text and "Bạn không có quyền thực hiện việc này" in page.text
    assert "You do not have permission" not in page.text
    assert '<code lang="en" data-testid="error-code">permission_denied</code>' in page.text
