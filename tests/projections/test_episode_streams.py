"""The shadow run's scan of the events table (SQLite and PostgreSQL) reads exactly what the
repository reads."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from application.episode_streams import episode_streams
from application.outcomes import OutcomesApplication
from domain.episode import Episode


def test_the_scan_yields_every_episode_stream_in_id_order(store):
    app = OutcomesApplication(store.env(), clock=lambda: datetime(2027, 1, 1, tzinfo=UTC))
    assert type(app.recorder).__module__ == f"eventsourcing.{store.kind}"
    ids = []
    for n in range(25):
        episode_id = app.open_episode(patient_ref=f"p{n}", clinic_id="c", recorded_by="u",
                                      opened_on=date(2026, 1, 5)).episode_id
        ids.append(episode_id)
        for week, total in enumerate((18, 12, 8, 4, 3, 2)[: 1 + n % 6]):
            app.record_assessment(episode_id, instrument="PHQ-9", recorded_by="u", total=total,
                                  administered=date(2026, 1, 5) + timedelta(weeks=week))
    app.register_criteria(criteria_id="not-an-episode", base="acnp2006", params={},
                          source="test", recorded_by="u")

    streams = list(episode_streams(app))

    assert [s[0].originator_id for s in streams] == sorted(ids, key=str)
    for stream in streams:
        expected = [e for e in app.repository.event_store.get(stream[0].originator_id)]
        assert stream == expected
        assert all(isinstance(e, Episode.Event) for e in stream)
    after = str(sorted(ids, key=str)[9])
    assert [s[0].originator_id for s in episode_streams(app, after=after)] == \
        sorted(ids, key=str)[10:]
    app.close()
