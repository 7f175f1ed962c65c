"""The working calendar (D-50): hours, weekends, public holidays with Tết, ad-hoc days."""

from __future__ import annotations

import datetime as dt

import pytest

from core.workcalendar import TIMEZONE, WorkCalendar


def at(local: str) -> dt.datetime:
    return dt.datetime.fromisoformat(local).replace(tzinfo=TIMEZONE)


CAL = WorkCalendar()


def test_weekends_and_public_holidays_are_not_working_days():
    assert CAL.is_working_day(dt.date(2026, 12, 11))  # Friday
    assert not CAL.is_working_day(dt.date(2026, 12, 12))  # Saturday
    assert not CAL.is_working_day(dt.date(2026, 9, 2))  # National Day
    # Tết 2027 (lunar new year: 6 February) is a working-day gap from 4 to 10 February.
    assert CAL.is_working_day(dt.date(2027, 2, 3))
    assert not any(CAL.is_working_day(dt.date(2027, 2, d)) for d in range(4, 11))
    assert CAL.is_working_day(dt.date(2027, 2, 11))


def test_working_hours_are_eight_to_five_local_time():
    assert not CAL.is_working_instant(at("2026-12-11 07:59:59"))
    assert CAL.is_working_instant(at("2026-12-11 08:00"))
    assert CAL.is_working_instant(at("2026-12-11 16:59:59"))
    assert not CAL.is_working_instant(at("2026-12-11 17:00"))


def test_next_working_slot_skips_nights_weekends_and_tet():
    assert CAL.next_working_slot(at("2026-12-11 10:00")) == at("2026-12-11 10:00")
    assert CAL.next_working_slot(at("2026-12-11 17:30")) == at("2026-12-14 08:00")
    assert CAL.next_working_slot(at("2026-12-14 06:00")) == at("2026-12-14 08:00")
    assert CAL.next_working_slot(at("2027-02-03 18:00")) == at("2027-02-11 08:00")


def test_adding_working_hours_across_a_holiday_and_back():
    # Thursday 15 April 2027 14:00; Friday the 16th is Hùng Kings' day, then a weekend.
    start = at("2027-04-15 14:00")
    assert CAL.add_working_hours(start, 3) == at("2027-04-15 17:00")
    assert CAL.add_working_hours(start, 4) == at("2027-04-19 09:00")
    assert CAL.add_working_hours(start, 8) == at("2027-04-19 13:00")
    assert CAL.subtract_working_time(at("2027-04-19 13:00"), dt.timedelta(hours=8)) == start
    assert CAL.working_time_between(start, at("2027-04-19 13:00")) == dt.timedelta(hours=8)
    assert CAL.working_time_between(at("2027-04-19 13:00"), start) == -dt.timedelta(hours=8)
    # Outside working hours counts from the next opening.
    assert CAL.add_working_hours(at("2027-04-17 22:00"), 1) == at("2027-04-19 09:00")


def test_shifting_working_days():
    assert CAL.shift_working_days(dt.date(2026, 12, 14), -1) == dt.date(2026, 12, 11)
    assert CAL.shift_working_days(dt.date(2027, 2, 11), -1) == dt.date(2027, 2, 3)
    assert CAL.shift_working_days(dt.date(2027, 2, 3), 1) == dt.date(2027, 2, 11)
    assert CAL.working_day_on_or_before(dt.date(2027, 2, 7)) == dt.date(2027, 2, 3)


def test_ad_hoc_days_off_and_worked_days():
    cal = WorkCalendar(days_off=[dt.date(2026, 12, 11)], working_days=[dt.date(2026, 12, 12)])
    assert not cal.is_working_day(dt.date(2026, 12, 11))
    assert cal.is_working_day(dt.date(2026, 12, 12))
    assert cal.next_working_slot(at("2026-12-10 17:30")) == at("2026-12-12 08:00")


def test_a_day_must_end_after_it_starts():
    with pytest.raises(ValueError, match="end after"):
        WorkCalendar(day_start=dt.time(17), day_end=dt.time(8))
