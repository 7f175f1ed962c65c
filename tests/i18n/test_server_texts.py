"""Server-side texts come from one place, the catalogues under core/locales (core/i18n.py): every
text keeps every translation it had, a language without one falls back to Vietnamese as before
(never to English or to the key), and each place that renders a text yields exactly the strings
it yielded when the texts were hard-coded."""

from __future__ import annotations

import datetime as dt
import uuid
from types import SimpleNamespace

import pytest
from babel.messages.pofile import read_po

from core import i18n
from devices.locales import SUPPORTED_LANGUAGES
from inbox import schemas as inbox_schemas
from inbox.queries import Entry
from inbox.service import Item
from notifications import payloads
from notifications.content import PushContent, PushSpec
from notifications.models import Notification
from tracking import events, notify, sender
from tracking.rules import get_rules

ALL = frozenset(SUPPORTED_LANGUAGES)
VI = frozenset({"vi"})
TRACKING_KEYS = (
    "tracking.classified.title",
    "tracking.classified.body",
    "tracking.assigned.title",
    "tracking.assigned.summary",
    "tracking.assigned.detail",
    "tracking.deadline_changed.title",
    "tracking.deadline_changed.summary",
    "tracking.deadline_changed.detail",
    "tracking.report_rejected.title",
    "tracking.report_rejected.summary",
    "tracking.report_rejected.detail",
    "tracking.report_approved.title",
    "tracking.report_approved.summary",
    "tracking.report_approved.detail",
    "tracking.refused.title",
    "tracking.refused.detail",
    "tracking.refused.wrong_assignment",
    "tracking.refused.outside_authority",
    "tracking.report_rejected.detail_due",
    "tracking.update_requested.update.title",
    "tracking.update_requested.correction.title",
    "tracking.update_requested.detail",
    "tracking.update_answered.update.title",
    "tracking.update_answered.correction.title",
    "tracking.update_answered.detail",
    "tracking.reminder.request.update.before.title",
    "tracking.reminder.request.update.today.title",
    "tracking.reminder.request.correction.before.title",
    "tracking.reminder.request.correction.today.title",
    "tracking.reminder.request.body",
    "tracking.reminder.request.update.overdue.title",
    "tracking.reminder.request.correction.overdue.title",
    "tracking.reminder.request.overdue.body",
    "tracking.reminder.request.overdue.unit_leaders.title",
    "tracking.reminder.request.overdue.standing_agency.title",
    "tracking.reminder.request.overdue.escalated.body",
    "tracking.summary.more",
    "tracking.reminder.deadline.today.title",
    "tracking.reminder.deadline.title",
    "tracking.reminder.deadline.body",
    "tracking.reminder.overdue.title",
    "tracking.reminder.overdue.body",
    "tracking.reminder.overdue.unit_leaders.title",
    "tracking.reminder.overdue.standing_agency.title",
    "tracking.reminder.overdue.escalated.body",
    "tracking.reminder.confirm.half.title",
    "tracking.reminder.confirm.half.body",
    "tracking.reminder.confirm.expiry.title",
    "tracking.reminder.confirm.expiry.body",
    "tracking.reminder.report.title",
    "tracking.reminder.report.body",
    "tracking.digest.title",
    "tracking.digest.body",
    "tracking.digest.body_listed",
    "tracking.digest.body_listed_more",
)
# Who had which text before the catalogues: the push and inbox lines in the six languages of the
# portal app, the tracking app's texts in Vietnamese only (its notifications carry "vi" alone).
LANGUAGES_OF = {
    "push.title": ALL,
    "push.generic_line": ALL,
    "inbox.withdrawn_line": ALL,
    **dict.fromkeys(TRACKING_KEYS, VI),
}
# Today's strings, as they were written in notifications/payloads.py and inbox/schemas.py.
TITLE = dict.fromkeys(SUPPORTED_LANGUAGES, "Chuông")
GENERIC_LINE = {
    "vi": "Bạn có thông báo mới",
    "en": "You have a new notification",
    "zh": "您有一条新通知",
    "fr": "Vous avez une nouvelle notification",
    "es": "Tiene una nueva notificación",
    "ru": "У вас новое уведомление",
}
WITHDRAWN_LINE = {
    "vi": "Tin này đã được thu hồi",
    "en": "This story has been withdrawn",
    "zh": "此新闻已撤回",
    "fr": "Cet article a été retiré",
    "es": "Esta noticia ha sido retirada",
    "ru": "Эта новость отозвана",
}


def catalogue(language: str) -> dict[str, str]:
    path = i18n.LOCALES_DIR / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as source:
        messages = [m for m in read_po(source, locale=language) if m.id]
    # A fuzzy or empty entry is left out when compiled: it would fall back without a word.
    assert [m.id for m in messages if m.fuzzy or not m.string] == [], language
    return {str(m.id): str(m.string) for m in messages}


def test_the_apps_languages_have_catalogues():
    assert i18n.languages() == ALL


def test_every_text_has_every_translation_it_had():
    present = {language: catalogue(language) for language in SUPPORTED_LANGUAGES}
    keys = {key for texts in present.values() for key in texts}
    assert keys == set(LANGUAGES_OF), "a key without an entry in LANGUAGES_OF, or one gone"
    for key, languages in LANGUAGES_OF.items():
        assert {language for language in SUPPORTED_LANGUAGES if key in present[language]} >= languages, key
        for language in languages:
            assert i18n.has(key, language), (key, language)


def test_a_language_without_the_text_falls_back_to_vietnamese_not_english():
    assert i18n.translate("push.generic_line", "de") == GENERIC_LINE["vi"]
    assert i18n.language_for("push.generic_line", "de") == "vi"
    assert i18n.translate("tracking.digest.title", "en") == "Tổng hợp nhắc việc trong ngày"
    assert i18n.language_for("tracking.digest.title", "en") == "vi"
    with pytest.raises(KeyError):
        i18n.translate("no.such.text", "en")


@pytest.mark.parametrize("language", [*SUPPORTED_LANGUAGES, "de"])
def test_a_sensitive_push_shows_todays_generic_alert(language):
    content = PushContent(
        kind="k", priority="normal", sensitivity="internal", title={"vi": "Mật"}, body={"vi": "Mật"}
    )
    spec = PushSpec(id="n1", content=content)
    push = payloads.render(spec, language)
    expected = language if language in GENERIC_LINE else "vi"
    assert (push.title, push.body) == (TITLE[expected], GENERIC_LINE[expected])


def _item(*, sensitivity: str, withdrawn: bool) -> Item:
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    notification = Notification(
        id=uuid.uuid4(),
        app="portal",
        kind="news.published",
        priority="normal",
        sensitivity=sensitivity,
        # Content in every language: the lines' own fallback is what is tested.
        title=dict.fromkeys(SUPPORTED_LANGUAGES, "Tiêu đề"),
        body=dict.fromkeys(SUPPORTED_LANGUAGES, "Nội dung"),
        data={},
        deep_link=None,
        withdrawn_at=now if withdrawn else None,
    )
    entry = Entry(
        notification_id=notification.id, created_at=now, read_at=None, archived_at=None, broadcast=False
    )
    return Item(notification=notification, entry=entry, read_at=None)


@pytest.mark.parametrize("language", [*SUPPORTED_LANGUAGES, "de"])
def test_the_inbox_shows_todays_generic_and_withdrawal_lines(language):
    expected = language if language in GENERIC_LINE else "vi"
    hidden = inbox_schemas.render(
        _item(sensitivity="internal", withdrawn=False), language=language, full=False
    )
    assert (hidden.title, hidden.body, hidden.language) == (GENERIC_LINE[expected], None, expected)
    withdrawn = inbox_schemas.render(
        _item(sensitivity="public", withdrawn=True), language=language, full=True
    )
    assert (withdrawn.title, withdrawn.body, withdrawn.language) == (WITHDRAWN_LINE[expected], None, expected)


def test_a_recall_gets_todays_withdrawal_line_in_every_language():
    assert inbox_schemas.WITHDRAWN_LINE == WITHDRAWN_LINE


SUBJECT = sender.Subject(code="NV.01", name="Tên nhiệm vụ", due="14/12/2026", classified=False, open=True)
HEAD = "NV.01: Tên nhiệm vụ"


@pytest.mark.parametrize(
    ("rule", "occurrence", "title", "body"),
    [
        ("deadline", "d0:2026-12-14", "Nhiệm vụ đến hạn hôm nay", f"{HEAD}. Hạn hoàn thành: 14/12/2026."),
        ("deadline", "d3:2026-12-14", "Nhắc hạn nhiệm vụ", f"{HEAD}. Hạn hoàn thành: 14/12/2026."),
        (
            "overdue",
            "w1:responsible:2026-12-14",
            "Nhiệm vụ quá hạn",
            f"{HEAD} đã quá hạn từ 14/12/2026. Vui lòng cập nhật tiến độ.",
        ),
        (
            "overdue",
            "w5:unit_leaders:2026-12-14",
            "Cảnh báo nhiệm vụ quá hạn (đơn vị chủ trì)",
            f"{HEAD} quá hạn 5 ngày làm việc (hạn 14/12/2026) và chưa hoàn thành.",
        ),
        (
            "overdue",
            "w10:standing_agency:2026-12-14",
            "Cảnh báo nhiệm vụ quá hạn (cơ quan thường trực)",
            f"{HEAD} quá hạn 10 ngày làm việc (hạn 14/12/2026) và chưa hoàn thành.",
        ),
        (
            "confirm",
            "half:1796000000",
            "Xác nhận nhiệm vụ được giao",
            f"{HEAD}. Vui lòng xác nhận hoặc phản hồi trong 24 giờ làm việc kể từ khi nhận.",
        ),
        (
            "confirm",
            "expiry:1796000000",
            "Nhiệm vụ chưa được xác nhận",
            f"{HEAD} chưa được xác nhận sau 24 giờ làm việc.",
        ),
        ("report", "r3:2026-12-14", "Nhắc hạn báo cáo chỉ số", f"{HEAD}. Hạn báo cáo: 14/12/2026."),
    ],
)
def test_reminders_read_as_today(rule, occurrence, title, body):
    rules = get_rules().model_copy(update={"confirm_window_hours": 24})
    assert sender._text(rule, occurrence, SUBJECT, rules) == (title, body)


@pytest.mark.parametrize(
    ("count", "listed", "body"),
    [
        (2, [], "Bạn có 2 việc cần chú ý hôm nay"),
        (3, ["A", "B"], "Bạn có 3 việc cần chú ý hôm nay: A, B."),
        (8, list("ABCDEFG"), "Bạn có 8 việc cần chú ý hôm nay: A, B, C, D, E và 2 việc khác."),
    ],
)
def test_the_digest_reads_as_today(count, listed, body):
    assert sender._digest_body(count, listed) == body


def test_task_events_read_as_today():
    deadline = dt.datetime(2026, 12, 14, 10, tzinfo=dt.UTC)
    user = uuid.uuid4()
    row = {
        "id": uuid.uuid4(),
        "code": "NV.01",
        "name": "Tên nhiệm vụ",
        "result_status": "in_progress",
        "lead_unit_id": uuid.uuid4(),
        "responsible_user_ids": [user],
        "deadline": deadline,
        "report_status": "rejected",
        "report_note": "Thiếu số liệu",
    }
    assert [(kind, detail) for kind, _, detail in events._events_of(row, None)] == [
        ("tracking.assigned", f"{HEAD}. Thời hạn: 14/12/2026."),
        ("tracking.report_rejected", f"{HEAD}. Lý do: Thiếu số liệu"),
    ]
    before = SimpleNamespace(
        lead_unit_id=row["lead_unit_id"],
        responsible_user_ids=[user],
        deadline=deadline - dt.timedelta(days=7),
        report_status="submitted",
        report_note=None,
    )
    changed = {**row, "report_status": "approved", "report_note": None}
    assert [(kind, detail) for kind, _, detail in events._events_of(changed, before)] == [
        ("tracking.deadline_changed", f"{HEAD}. Thời hạn mới: 14/12/2026 (trước đây 07/12/2026)."),
        ("tracking.report_approved", f"{HEAD}."),
    ]


@pytest.mark.parametrize(
    ("kind", "title", "summary"),
    [
        ("tracking.assigned", "Nhiệm vụ mới được giao", "Bạn được giao {n} nhiệm vụ mới"),
        ("tracking.deadline_changed", "Thời hạn nhiệm vụ thay đổi", "Thời hạn của {n} nhiệm vụ thay đổi"),
        (
            "tracking.report_rejected",
            "Báo cáo bị trả lại, cần chỉnh sửa",
            "{n} báo cáo bị trả lại, cần chỉnh sửa",
        ),
        ("tracking.report_approved", "Báo cáo đã được phê duyệt", "{n} báo cáo đã được phê duyệt"),
    ],
)
def test_event_titles_and_summaries_read_as_today(kind, title, summary):
    assert i18n.translate(f"{kind}.title", "vi") == title
    assert events.summary(kind, ["a", "b"]) == (summary.format(n=2), "a; b")
    details = [f"d{i}" for i in range(7)]
    assert events.summary(kind, details) == (summary.format(n=7), "d0; d1; d2; d3; d4 và 2 nhiệm vụ khác")


def test_classified_tracking_texts_read_as_today():
    assert notify.CLASSIFIED_TITLE == "Nhiệm vụ mật có cập nhật"
    assert notify.CLASSIFIED_BODY == "Bạn có một thông báo về nhiệm vụ mật. Vui lòng mở ứng dụng để xem."
