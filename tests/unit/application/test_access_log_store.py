"""The access log's store and read model, without HTTP: appends, durability, visibility, filters."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from application.access_log import AccessLog
from bootstrap import Settings
from domain.access import ANONYMOUS, Access, AccessRecord
from projections.access_log import AccessLogView
from projections.runner import ReadModels, open_view

AT = datetime(2027, 12, 31, 9, 0, tzinfo=UTC)
BASE = Access(sub="dr-lee", authenticated=True, roles=("clinician",), clinics=("clinic-a",),
              clinic_id="clinic-a", method="GET", route="/episodes/{episode_id}",
              episode_id="6f1c7c9e-8a43-4d1e-9a3b-2f0e6f3b9d11", run_id=None,
              assessment_id=None, status=200, at=AT, request_id="req-1", client="10.0.0.7")


def anonymous(**changes: Any) -> Access:
    return replace(BASE, sub=ANONYMOUS, authenticated=False, roles=(), clinics=(),
                   clinic_id=None, status=401, **changes)


@pytest.fixture
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AccessLog]:
    settings = Settings(persistence="sqlite" if request.node.get_closest_marker("file_store")
                        else "memory", sqlite_path=tmp_path / "outcomes.sqlite")
    access_log = AccessLog(settings.eventsourcing_env("access-log"))
    yield access_log
    access_log.close()


def view_of(log: AccessLog) -> tuple[ReadModels, AccessLogView]:
    models = ReadModels(log, {AccessLogView.name: open_view(AccessLogView, None)})
    models.catch_up()
    view = models.views[AccessLogView.name]
    assert isinstance(view, AccessLogView)
    return models, view


def test_each_record_is_a_new_aggregate_at_the_next_position(log: AccessLog) -> None:
    assert [log.record(BASE), log.record(replace(BASE, status=404))] == [1, 2]
    events = [log.mapper.to_domain_event(n) for n in log.recorder.select_notifications(1, 10)]
    assert [type(e) for e in events] == [AccessRecord.Recorded, AccessRecord.Recorded]
    assert events[0].originator_id != events[1].originator_id
    assert all(e.originator_version == 1 for e in events)
    record: AccessRecord = log.repository.get(events[1].originator_id)
    assert record.access == replace(BASE, status=404)


def test_a_naive_arrival_time_is_refused_and_nothing_is_stored(log: AccessLog) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        log.record(replace(BASE, at=datetime(2027, 12, 31, 9, 0)))
    assert log.recorder.max_notification_id() is None


@pytest.mark.file_store
def test_records_survive_reopening_in_a_file_of_their_own(log: AccessLog, tmp_path: Path) -> None:
    log.record(BASE)
    log.close()
    assert (tmp_path / "access-log.sqlite").exists()
    assert not (tmp_path / "outcomes.sqlite").exists()
    again = AccessLog(Settings(sqlite_path=tmp_path / "outcomes.sqlite")
                      .eventsourcing_env("access-log"))
    try:
        [notification] = again.recorder.select_notifications(1, 10)
        assert again.mapper.to_domain_event(notification).request_id == "req-1"
    finally:
        again.close()


def test_auditors_see_their_clinics_records_and_failed_authentications(log: AccessLog) -> None:
    log.record(BASE)                                                       # 1: clinic-a
    log.record(replace(BASE, clinic_id="clinic-b", clinics=("clinic-b",)))  # 2: clinic-b
    log.record(replace(BASE, clinic_id=None))                              # 3: a clinic-a user
    log.record(replace(BASE, clinic_id=None, clinics=("clinic-b",)))       # 4: a clinic-b user
    log.record(anonymous())                                                # 5: failed auth
    log.record(replace(BASE, clinic_id=None, clinics=()))                  # 6: a user of none
    _, view = view_of(log)

    def seen(*clinics: str) -> list[int]:
        return [i["position"] for i in view.records(visible_to=clinics)[0]]
    assert seen("clinic-a") == [1, 3, 5]
    assert seen("clinic-b") == [2, 4, 5]
    assert seen("clinic-a", "clinic-b") == [1, 2, 3, 4, 5]
    assert seen() == [5]


def test_filters_are_inclusive_and_the_cursor_survives_a_rebuild(log: AccessLog) -> None:
    for n in range(5):
        log.record(replace(BASE, at=AT + timedelta(minutes=n), request_id=f"req-{n}",
                           sub="dr-lee" if n % 2 else "dr-okafor"))
    models, view = view_of(log)
    visible = ("clinic-a",)
    window = view.records(visible_to=visible, since=AT + timedelta(minutes=1),
                          until=(AT + timedelta(minutes=3)).astimezone(timezone(timedelta(hours=2))))[0]
    assert [i["request_id"] for i in window] == ["req-1", "req-2", "req-3"]
    assert [i["request_id"] for i in view.records(visible_to=visible, sub="dr-lee")[0]] == [
        "req-1", "req-3"]
    assert view.records(visible_to=visible, episode_id="not-this-one")[0] == []
    items, after = view.records(visible_to=visible, limit=2)
    assert [i["position"] for i in items] == [1, 2] and after == 2
    models.rebuild(AccessLogView.name)
    items, after = view.records(visible_to=visible, after=2, limit=2)
    assert [i["position"] for i in items] == [3, 4] and after == 4
    assert items[0] == {
        "position": 3, "record_id": items[0]["record_id"], "at": "2027-12-31T09:02:00.000000+00:00",
        "recorded_at": items[0]["recorded_at"], "sub": "dr-okafor", "authenticated": True,
        "roles": ["clinician"], "clinics": ["clinic-a"], "clinic_id": "clinic-a", "method": "GET",
        "route": "/episodes/{episode_id}", "episode_id": BASE.episode_id, "run_id": None,
        "assessment_id": None, "status": 200, "request_id": "req-2", "client": "10.0.0.7"}
