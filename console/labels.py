"""The words the console shows for stored enum values (roles, news statuses, priorities, audit
outcomes and actors, error kinds), in the reader's language.

The database and the API keep the English identifiers; a Vietnamese official reads Vietnamese.
Every label is marked with ``_()`` here, so ``pybabel extract`` finds it and the catalogue test
(tests/console/test_i18n.py) fails when one is untranslated. An unknown value falls back to the
value itself: a new enum member shows up raw rather than breaking the page.
"""

from __future__ import annotations

from collections.abc import Callable

from console.i18n import gettext


def _(message: str) -> str:
    """Marks a label for extraction; it is translated when shown (the language is per request)."""
    return message


ROLES = {
    "system_admin": _("System admin"),
    "unit_admin": _("Unit admin"),
    "publisher": _("Publisher"),
    "editor": _("Editor"),
    "reporter": _("Reporter"),
    "task_officer": _("Task officer"),
    "task_approver": _("Task approver"),
    "leader": _("Leader"),
    "member": _("Member"),
    "inspector": _("Inspector"),
}

NEWS_STATUSES = {
    "draft": _("Draft"),
    "submitted": _("Waiting for approval"),
    "approved": _("Approved"),
    "rejected": _("Rejected"),
    "scheduled": _("Scheduled"),
    "sending": _("Sending"),
    "sent": _("Sent"),
    "cancelled": _("Cancelled"),
    "recalled": _("Recalled"),
}

PRIORITIES = {
    "high": _("high"),
    "normal": _("normal"),
    "emergency": _("emergency"),
}

OUTCOMES = {
    "success": _("success"),
    "failure": _("failure"),
    "denied": _("denied"),
}

ACTOR_KINDS = {
    "user": _("user"),
    "api_client": _("API client"),
    "system": _("system"),
    "anonymous": _("anonymous"),
}

# Error pages name the kind of error by its HTTP status; the precise code stays on the page for
# the help desk, marked as a technical identifier.
ERROR_KINDS = {
    400: _("The request is not valid."),
    401: _("You need to sign in."),
    403: _("Access denied."),
    404: _("Not found."),
    409: _("This conflicts with the current state."),
    413: _("Too large."),
    422: _("Some fields need checking."),
    429: _("Too many attempts for now."),
    503: _("The service is unavailable for a moment."),
}


# The services' own messages (English, as the API returns them) that console users meet on the
# error page most; the page shows the reader's language when the catalogue has it.
SERVICE_MESSAGES = frozenset(
    {
        _("You do not have permission"),
        _("Not allowed on behalf of someone else"),
        _("News item not found"),
        _("User not found"),
        _("Task not found"),
        _("Session not found"),
        _("Delegation not found"),
        _("API client not found"),
        _("No such MFA reset request"),
        _("You cannot disable your own account"),
        _("This account can only read"),
    }
)


def _labeller(labels: dict[str, str]) -> Callable[[object], str]:
    def label(value: object) -> str:
        key = str(getattr(value, "value", value))
        return gettext(labels[key]) if key in labels else key

    return label


role_label = _labeller(ROLES)
news_status_label = _labeller(NEWS_STATUSES)
priority_label = _labeller(PRIORITIES)
outcome_label = _labeller(OUTCOMES)
actor_kind_label = _labeller(ACTOR_KINDS)


def error_kind(status: int) -> str:
    return gettext(ERROR_KINDS.get(status, _("Something went wrong.")))


def service_message(message: str) -> str:
    return gettext(message) if message in SERVICE_MESSAGES else message


FILTERS: dict[str, Callable[..., str]] = {
    "role_label": role_label,
    "news_status_label": news_status_label,
    "priority_label": priority_label,
    "outcome_label": outcome_label,
    "actor_kind_label": actor_kind_label,
    "error_kind": error_kind,
    "service_message": service_message,
}


# --- Units, calendar and SMS pages (console/routes/units.py, calendar.py, sms.py) ---

UNIT_KINDS = {
    "central": _("Central agency"),
    "ministry": _("Ministry"),
    "agency": _("Agency"),
    "province": _("Province"),
    "district": _("District"),
    "commune": _("Commune"),
    "department": _("Department"),
    "portal": _("Component portal"),
}

WEEKDAYS = (
    _("Monday"),
    _("Tuesday"),
    _("Wednesday"),
    _("Thursday"),
    _("Friday"),
    _("Saturday"),
    _("Sunday"),
)

SERVICE_MESSAGES = SERVICE_MESSAGES | frozenset(
    {
        _("Unit not found"),
        _("A unit with this code already exists"),
        _("Section not found"),
        _("A section with this code exists"),
        _("This section belongs to another portal"),
        _("Only staff of a unit may add sections"),
        _("Only system admins edit the calendar"),
        _("No ad-hoc calendar entry for that day"),
        _("Only system administrators manage the SMS fallback"),
        _("No breaker for this provider"),
        _("This breaker is not open"),
        _("Breaker state is unavailable (Redis)"),
    }
)

unit_kind_label = _labeller(UNIT_KINDS)


def weekday_label(day: object) -> str:
    weekday = getattr(day, "weekday", None)
    return gettext(WEEKDAYS[weekday()]) if callable(weekday) else str(day)


FILTERS.update({"unit_kind_label": unit_kind_label, "weekday_label": weekday_label})
