"""A weekly window keeps its wall-clock times in its time zone across DST changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from app.ingest.windows import Window


def weekly(starts_at: datetime, ends_at: datetime, zone: str = "Europe/Berlin") -> Window:
    return Window(
        id=UUID(int=1),
        name="patching",
        starts_at=starts_at,
        ends_at=ends_at,
        recurrence="weekly",
        time_zone=zone,
        recurs_until=None,
        service_ids=(),
        conditions=(),
        on_end="drop",
        ended_early_at=None,
    )


# Sunday 2030-03-24 02:00 to 04:00 Berlin is winter time (UTC+1): 01:00 to 03:00 UTC. Berlin
# moves to summer time (UTC+2) on 2030-03-31 at 02:00, which does not exist that day; the
# Sunday after, 2030-04-07, 02:00 Berlin is 00:00 UTC.
WINTER = weekly(datetime(2030, 3, 24, 1, 0, tzinfo=UTC), datetime(2030, 3, 24, 3, 0, tzinfo=UTC))


def test_the_first_occurrence_is_as_given() -> None:
    assert WINTER.occurrence_at(datetime(2030, 3, 24, 1, 30, tzinfo=UTC)) is not None
    assert WINTER.occurrence_at(datetime(2030, 3, 24, 3, 0, tzinfo=UTC)) is None
    assert WINTER.occurrence_at(datetime(2030, 3, 24, 0, 59, tzinfo=UTC)) is None


def test_after_the_spring_change_it_stays_at_two_oclock_local() -> None:
    occurrence = WINTER.occurrence_at(datetime(2030, 4, 7, 0, 30, tzinfo=UTC))
    assert occurrence == (
        datetime(2030, 4, 7, 0, 0, tzinfo=UTC),
        datetime(2030, 4, 7, 2, 0, tzinfo=UTC),
    )
    # 01:00 to 03:00 UTC was the window in winter; in summer 02:00 UTC is already 04:00 Berlin.
    assert WINTER.occurrence_at(datetime(2030, 4, 7, 2, 30, tzinfo=UTC)) is None
    assert WINTER.next_start(datetime(2030, 4, 1, tzinfo=UTC)) == datetime(
        2030, 4, 7, 0, 0, tzinfo=UTC
    )


def test_on_the_day_of_the_change_the_skipped_hour_moves_forward() -> None:
    # 02:00 Berlin does not exist on 2030-03-31: the window starts at 03:00 CEST (01:00 UTC)
    # and ends at 04:00 CEST (02:00 UTC).
    occurrence = WINTER.occurrence_at(datetime(2030, 3, 31, 1, 30, tzinfo=UTC))
    assert occurrence is not None
    assert occurrence[1] == datetime(2030, 3, 31, 2, 0, tzinfo=UTC)


def test_autumn_back_to_winter_time() -> None:
    summer = weekly(
        datetime(2030, 10, 20, 0, 0, tzinfo=UTC), datetime(2030, 10, 20, 2, 0, tzinfo=UTC)
    )
    # Berlin goes back to UTC+1 on 2030-10-27; on 2030-11-03, 02:00 Berlin is 01:00 UTC.
    assert summer.occurrence_at(datetime(2030, 11, 3, 0, 30, tzinfo=UTC)) is None
    assert summer.occurrence_at(datetime(2030, 11, 3, 1, 30, tzinfo=UTC)) is not None
    assert summer.occurrence_at(datetime(2030, 11, 3, 2, 59, tzinfo=UTC)) is not None
    assert summer.occurrence_at(datetime(2030, 11, 3, 3, 0, tzinfo=UTC)) is None


def test_an_occurrence_ended_early_stops_then_and_the_next_week_is_whole() -> None:
    start = datetime(2030, 3, 24, 1, 0, tzinfo=UTC)
    window = weekly(start, start + timedelta(hours=2))
    cut = Window(**{**window.__dict__, "ended_early_at": start + timedelta(minutes=30)})
    assert cut.occurrence_at(start + timedelta(minutes=20)) is not None
    assert cut.occurrence_at(start + timedelta(minutes=40)) is None
    assert cut.occurrence_at(start + timedelta(days=7, minutes=40)) is not None


def test_a_one_off_window_does_not_recur() -> None:
    start = datetime(2030, 3, 24, 1, 0, tzinfo=UTC)
    once = Window(**{**WINTER.__dict__, "recurrence": "once"})
    assert once.occurrence_at(start + timedelta(minutes=1)) is not None
    assert once.occurrence_at(start + timedelta(days=7, minutes=1)) is None
