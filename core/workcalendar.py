"""The working calendar (D-50): Asia/Ho_Chi_Minh, 08:00–17:00 Monday–Friday, minus Vietnamese
public holidays (the lunar new year included, from the ``holidays`` package) and ad-hoc days off,
plus ad-hoc working days (a Saturday worked to bridge a holiday).

"8 working hours" (D-14) and "when may a reminder ring a phone" are both answered here. Every
function takes and returns aware datetimes; results are in UTC. Vietnam has no daylight saving,
so a working day is always one contiguous 9-hour slot.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

TIMEZONE = ZoneInfo("Asia/Ho_Chi_Minh")
DAY_START = dt.time(8, 0)
DAY_END = dt.time(17, 0)
# Enough to cross the longest run of non-working days (Tết plus weekends plus ad-hoc days).
_MAX_SCAN_DAYS = 60


@lru_cache(maxsize=64)
def _public_holidays(year: int) -> frozenset[dt.date]:
    return frozenset(holidays.country_holidays("VN", years=year).keys())


def public_holidays(year: int, *, language: str = "vi") -> dict[dt.date, str]:
    """The public holidays of ``year`` with their names (``vi`` or ``en``), for people to read
    (the console's calendar page); the calendar itself uses the same package's dates."""
    names = holidays.country_holidays("VN", years=year, language="en_US" if language == "en" else "vi")
    return dict(sorted(names.items()))


class WorkCalendar:
    def __init__(
        self,
        *,
        days_off: Iterable[dt.date] = (),
        working_days: Iterable[dt.date] = (),
        day_start: dt.time = DAY_START,
        day_end: dt.time = DAY_END,
    ) -> None:
        if day_end <= day_start:
            raise ValueError("the working day must end after it starts")
        self.days_off = frozenset(days_off)
        self.extra_working_days = frozenset(working_days)
        self.day_start = day_start
        self.day_end = day_end
        # Sweeps ask about the same few hundred days thousands of times.
        self._working: dict[dt.date, bool] = {}

    # --- days ---

    def is_working_day(self, day: dt.date) -> bool:
        known = self._working.get(day)
        if known is None:
            known = self._working[day] = day in self.extra_working_days or not (
                day in self.days_off or day.weekday() >= 5 or day in _public_holidays(day.year)
            )
        return known

    def working_day_on_or_before(self, day: dt.date) -> dt.date:
        for _ in range(_MAX_SCAN_DAYS):
            if self.is_working_day(day):
                return day
            day -= dt.timedelta(days=1)
        raise ValueError("no working day within 60 days")

    def working_day_on_or_after(self, day: dt.date) -> dt.date:
        for _ in range(_MAX_SCAN_DAYS):
            if self.is_working_day(day):
                return day
            day += dt.timedelta(days=1)
        raise ValueError("no working day within 60 days")

    def shift_working_days(self, day: dt.date, n: int) -> dt.date:
        """``n`` working days after (n > 0) or before (n < 0) ``day``; ``day`` need not be one."""
        step = dt.timedelta(days=1 if n > 0 else -1)
        remaining = abs(n)
        while remaining:
            day += step
            if self.is_working_day(day):
                remaining -= 1
        return day

    # --- instants ---

    @staticmethod
    def local(instant: dt.datetime) -> dt.datetime:
        return instant.astimezone(TIMEZONE)

    def at(self, day: dt.date, time: dt.time) -> dt.datetime:
        """``time`` on local ``day``, as UTC."""
        return dt.datetime.combine(day, time, tzinfo=TIMEZONE).astimezone(dt.UTC)

    def day_opens(self, day: dt.date) -> dt.datetime:
        return self.at(day, self.day_start)

    def day_closes(self, day: dt.date) -> dt.datetime:
        return self.at(day, self.day_end)

    def is_working_instant(self, instant: dt.datetime) -> bool:
        local = self.local(instant)
        return self.is_working_day(local.date()) and self.day_start <= local.time() < self.day_end

    def next_working_slot(self, instant: dt.datetime) -> dt.datetime:
        """``instant`` itself if it is working time, else the opening of the next working day."""
        if self.is_working_instant(instant):
            return instant.astimezone(dt.UTC)
        local = self.local(instant)
        day = local.date()
        if not (self.is_working_day(day) and local.time() < self.day_start):
            day = self.shift_working_days(day, 1)
        return self.day_opens(day)

    def add_working_time(self, instant: dt.datetime, amount: dt.timedelta) -> dt.datetime:
        """The instant ``amount`` of working time after ``instant`` (time outside working hours
        does not count). Ending exactly at closing time stays at closing time."""
        if amount < dt.timedelta(0):
            return self.subtract_working_time(instant, -amount)
        current = self.next_working_slot(instant)
        remaining = amount
        while True:
            closes = self.day_closes(self.local(current).date())
            available = closes - current
            if remaining <= available:
                return current + remaining
            remaining -= available
            current = self.day_opens(self.shift_working_days(self.local(current).date(), 1))

    def add_working_hours(self, instant: dt.datetime, hours: float) -> dt.datetime:
        return self.add_working_time(instant, dt.timedelta(hours=hours))

    def subtract_working_time(self, instant: dt.datetime, amount: dt.timedelta) -> dt.datetime:
        """The latest instant ``t`` with ``add_working_time(t, amount) <= instant``'s working
        position: walking back stops at an opening time rather than the previous closing."""
        current = self._previous_working_instant(instant)
        remaining = amount
        while True:
            opens = self.day_opens(self.local(current).date())
            available = current - opens
            if remaining <= available:
                return current - remaining
            remaining -= available
            current = self.day_closes(self.shift_working_days(self.local(current).date(), -1))

    def working_time_between(self, start: dt.datetime, end: dt.datetime) -> dt.timedelta:
        """Working time from ``start`` to ``end`` (negative when ``end`` is earlier)."""
        if end < start:
            return -self.working_time_between(end, start)
        total = dt.timedelta(0)
        day = self.local(start).date()
        last = self.local(end).date()
        while day <= last:
            if self.is_working_day(day):
                lo = max(start, self.day_opens(day))
                hi = min(end, self.day_closes(day))
                if hi > lo:
                    total += hi - lo
            day += dt.timedelta(days=1)
        return total

    def _previous_working_instant(self, instant: dt.datetime) -> dt.datetime:
        """``instant`` if it is within (or at the close of) a working day, else the latest
        closing time before it."""
        local = self.local(instant)
        day = local.date()
        if self.is_working_day(day) and self.day_start <= local.time() <= self.day_end:
            return instant.astimezone(dt.UTC)
        if self.is_working_day(day) and local.time() > self.day_end:
            return self.day_closes(day)
        return self.day_closes(self.shift_working_days(day, -1))


DEFAULT_CALENDAR = WorkCalendar()
