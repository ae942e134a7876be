"""A page cursor names a stable key: it still points at the same place after a read model is
rebuilt from the events (``outcomes projections rebuild``)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from application.outcomes import OutcomesApplication
from projections.runner import ReadModels


def given_episodes(count: int) -> tuple[OutcomesApplication, ReadModels, list[str]]:
    app = OutcomesApplication({}, clock=lambda: datetime(2027, 12, 31, tzinfo=UTC))
    ids = []
    for n in range(count):
        opened = app.open_episode(patient_ref=f"pt-{n}", clinic_id="clinic-p", recorded_by="u",
                                  opened_on=date(2026, 1, 5))
        app.record_assessment(opened.episode_id, instrument="PHQ-9", total=12 + n % 5,
                              administered=date(2026, 1, 5), recorded_by="u")
        ids.append(str(opened.episode_id))
    models = ReadModels.open(app, None)
    models.catch_up()
    return app, models, ids


def test_an_episodes_cursor_taken_before_a_rebuild_gives_exactly_the_rest_after_it() -> None:
    # Given the first page of five episodes, in opening order
    _, models, ids = given_episodes(5)
    page, cursor = models.episodes.find(clinic_id="clinic-p", limit=2)
    assert [e["episode_id"] for e in page] == ids[:2] and cursor is not None
    # When the read model is rebuilt from the events
    models.rebuild("episodes")
    # Then following the cursor gives exactly the three others, in the same order
    rest, after = models.episodes.find(clinic_id="clinic-p", after=cursor, limit=50)
    assert [e["episode_id"] for e in rest] == ids[2:]
    assert after is None


def test_an_audit_cursor_survives_a_rebuild() -> None:
    app, models, _ = given_episodes(3)
    page, cursor = models.audit.trail(clinic_id="clinic-p", limit=4)
    assert cursor is not None
    expected, _ = models.audit.trail(clinic_id="clinic-p", after=cursor, limit=500)
    models.rebuild("audit")
    rest, _ = models.audit.trail(clinic_id="clinic-p", after=cursor, limit=500)
    assert rest == expected and len(page) + len(rest) == app.recorder.max_notification_id()
