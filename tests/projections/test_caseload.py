"""The caseload read model (ADR 0032) on SQLite files and PostgreSQL: its rows after a history
with every alert event (safety, off-track, back on track, overdue and its resolution, an
acknowledgement, a resolution, a support review, a void, a close), the same rows when the
events are applied one by one and when the view is rebuilt from position 0; and its pure rules
(the rank, the on-track status)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from test_both_stores import dump

from application.outcomes import OutcomesApplication
from domain.signals.packs import get_rule_pack
from projections.caseload import CaseloadView, rank_of
from projections.runner import ReadModels, open_view

ITEM9 = [2, 2, 2, 2, 2, 2, 2, 2, 1]  # PHQ-9 17, item 9 answered 1
NOW = datetime(2027, 6, 30, tzinfo=UTC)


def alert_of(app: OutcomesApplication, episode_id: UUID, kind: str) -> str:
    [alert_id] = [a.alert_id for a in app.alerts(episode_id) if a.kind == kind]
    return alert_id


def history(app: OutcomesApplication, models: ReadModels) -> dict[str, UUID]:
    """Four episodes of clinic-a, caught up after every command (as the API does):
    ``safety``: a positive item 9 (acknowledged), off track at week 4 (PHQ-9 20 >= 17) with a
    support review, back on track at week 9 (5 < 13) and that alert resolved; ``overdue``:
    flagged overdue, then an assessment (which resolves it), one voided; ``qids``: off track at
    week 4 (QIDS-SR16 15 >= 9, STAR*D); ``closed``: a positive item 9, then discharged;
    ``rewatched``: off track at week 4, then watched by phq9-item9 and overdue only
    (SignalsWatched: no pack that signalled watches any more); ``withdrawn``: off track at
    week 4, then that assessment voided (the signal withdrawn: BackOnTrack, "withdrawn")."""
    ids: dict[str, UUID] = {}

    def run(result: Any) -> Any:
        models.catch_up()
        return result

    for key, instrument in (("safety", "PHQ-9"), ("overdue", "PHQ-9"), ("qids", "QIDS-SR16"),
                            ("closed", "PHQ-9"), ("rewatched", "PHQ-9"),
                            ("withdrawn", "PHQ-9")):
        ids[key] = run(app.open_episode(patient_ref=f"p-{key}", clinic_id="clinic-a",
                                        recorded_by="dr-a", instrument=instrument,
                                        opened_on=date(2026, 1, 5))).episode_id
    e = ids["safety"]
    run(app.record_assessment(e, instrument="PHQ-9", administered=date(2026, 1, 5),
                              items=ITEM9, recorded_by="nurse"))
    run(app.acknowledge_alert(e, alert_of(app, e, "safety"), action="contacted_patient",
                              note="safety plan reviewed by phone", recorded_by="dr-a"))
    run(app.record_assessment(e, instrument="PHQ-9", administered=date(2026, 2, 2), total=20,
                              recorded_by="nurse"))
    off_track = alert_of(app, e, "off_track")
    run(app.record_support_review(e, alert_id=off_track, clinical_date=date(2026, 2, 3),
                                  domains={d: {"rating": 3, "note": ""} for d in (
                                      "alliance", "motivation", "social_support",
                                      "life_events")}, recorded_by="dr-a"))
    run(app.record_assessment(e, instrument="PHQ-9", administered=date(2026, 3, 9), total=5,
                              recorded_by="nurse"))
    run(app.resolve_alert(e, off_track, reason="back on track", recorded_by="dr-a"))

    e = ids["overdue"]
    run(app.flag_overdue(e, today=date(2026, 2, 9), overdue_days=28, recorded_by="sweep"))
    first = run(app.record_assessment(e, instrument="PHQ-9", administered=date(2026, 2, 10),
                                      total=12, recorded_by="nurse"))
    run(app.record_assessment(e, instrument="PHQ-9", administered=date(2026, 2, 17), total=11,
                              recorded_by="nurse"))
    run(app.void_assessment(e, first.assessment.assessment_id, reason="wrong patient",
                            recorded_by="nurse"))

    e = ids["qids"]
    for day, total in ((date(2026, 1, 5), 16), (date(2026, 2, 2), 15)):
        run(app.record_assessment(e, instrument="QIDS-SR16", administered=day, total=total,
                                  recorded_by="nurse"))
    e = ids["rewatched"]
    for day in (date(2026, 1, 5), date(2026, 2, 2)):
        run(app.record_assessment(e, instrument="PHQ-9", administered=day, total=20,
                                  recorded_by="nurse"))
    run(app.watch_signals(e, packs=[get_rule_pack("phq9-item9"), get_rule_pack("overdue")],
                          curve=None, reason="cut points off for this episode", recorded_by="dr-a"))
    e = ids["withdrawn"]
    for day in (date(2026, 1, 5), date(2026, 2, 2)):
        run(app.record_assessment(e, instrument="PHQ-9", administered=day, total=20,
                                  assessment_id=f"w-{day}", recorded_by="nurse"))
    run(app.void_assessment(e, "w-2026-02-02", reason="wrong patient", recorded_by="nurse"))
    e = ids["closed"]
    run(app.record_assessment(e, instrument="PHQ-9", administered=date(2026, 1, 5), items=ITEM9,
                              recorded_by="nurse"))
    run(app.close_episode(e, discharged_on=date(2026, 3, 2), recorded_by="dr-a"))
    return ids


def rows(view: CaseloadView) -> dict[str, dict[str, Any]]:
    with view.reading() as cursor:
        cursor.execute("SELECT * FROM caseload")
        found = {r["episode_id"]: {k: r[k] for k in r.keys() if k != "state"}  # noqa: SIM118
                 for r in cursor.fetchall()}
    return found


def test_rows_after_every_alert_event_and_a_rebuild_and_one_by_one_are_the_same(store):
    app = store.app(clock=lambda: NOW)
    models = ReadModels.open(app, store.views(), ["caseload"])
    try:
        ids = history(app, models)
        view = models.views["caseload"]
        assert isinstance(view, CaseloadView)
        found = rows(view)
        safety, overdue, qids, closed = (found[str(ids[k])] for k in (
            "safety", "overdue", "qids", "closed"))
        # safety: the safety alert acknowledged (not resolved), off-track resolved, back on track
        assert (safety["safety"], safety["off_track"], safety["overdue"]) == (1, 0, 0)
        assert safety["on_track"] == "on_track"
        assert json.loads(safety["latest"]) == {"score": 5, "on": "2026-03-09"}
        assert safety["assessed_on"] == "2026-03-09"
        assert safety["safety_waiting_since"] is None  # acknowledged
        assert safety["rank"].startswith("0|") and safety["rank"].endswith(
            f"|2026-03-09|{safety['position']:020d}")
        # overdue: resolved by the assessment of 2026-02-10 (later voided); latest 2026-02-17
        assert (overdue["safety"], overdue["off_track"], overdue["overdue"]) == (0, 0, 0)
        assert overdue["rank"] == f"3||2026-02-17|{overdue['position']:020d}"
        assert json.loads(overdue["latest"]) == {"score": 11, "on": "2026-02-17"}
        assert overdue["on_track"] == "not_yet"
        # QIDS-SR16 15 at week 4 (>= 9): off track under stard-qids
        assert (qids["off_track"], qids["on_track"]) == (1, "not_on_track")
        assert qids["rank"].startswith("1|")
        # rewatched: its off-track alert stays unresolved; no watching pack has signalled
        rewatched = found[str(ids["rewatched"])]
        assert (rewatched["off_track"], rewatched["on_track"]) == (1, "not_yet")
        # withdrawn: its alert stays open; the withdrawn signal is neither on nor off track
        withdrawn = found[str(ids["withdrawn"])]
        assert (withdrawn["off_track"], withdrawn["on_track"]) == (1, "not_yet")
        # closed: kept with its discharge date; its unacknowledged safety alert still counts
        assert closed["closed_on"] == "2026-03-02" and closed["safety"] == 1
        assert closed["safety_waiting_since"] is not None
        assert view.safety_overdue(now=NOW, safety_ack_hours=24) == 1
        listed, after = view.find("clinic-a", now=NOW, safety_ack_hours=24)
        # qids, rewatched and withdrawn: off-track alerts raised in that order
        assert [i["episode_id"] for i in listed] == [str(ids[k]) for k in (
            "safety", "qids", "rewatched", "withdrawn", "overdue")] and after is None
        assert [i["days_since_assessment"] for i in listed] == [
            (NOW.date() - date(2026, 3, 9)).days, (NOW.date() - date(2026, 2, 2)).days,
            (NOW.date() - date(2026, 2, 2)).days, (NOW.date() - date(2026, 1, 5)).days,
            (NOW.date() - date(2026, 2, 17)).days
        ] == [478, 513, 513, 541, 498]

        incremental = dump(view)
        one_by_one = open_view(CaseloadView, None)
        notifications = app.recorder.select_notifications(start=1, limit=10_000,
                                                          topics=view.topics)
        for n in notifications:
            one_by_one.process(app.name, [(app.mapper.to_domain_event(n), n.id)])
        assert dump(one_by_one) == incremental
        one_by_one.datastore.close()
        assert models.rebuild("caseload") == len(notifications)
        assert dump(models.views["caseload"]) == incremental
    finally:
        models.close()
        app.close()


def test_the_rank_orders_groups_then_the_oldest_alert_then_the_longest_wait_then_opening():
    def alert(kind: str, at: str, status: str = "open") -> dict[str, str]:
        return {"kind": kind, "raised_at": f"2026-03-0{at}T09:00:00.000000+00:00",
                "status": status}
    ranks = {
        "safety early, off track too, assessed later": rank_of(
            [alert("off_track", "1"), alert("safety", "4")], "2026-03-01", 9),
        "safety late": rank_of([alert("safety", "5")], "2026-01-05", 1),
        "off track": rank_of([alert("off_track", "2"), alert("overdue", "1")], "2026-01-05", 2),
        "overdue": rank_of([alert("overdue", "1")], "2026-01-05", 3),
        "rest, assessed earlier, opened later": rank_of([], "2026-01-05", 7),
        "rest, tie, opened later still": rank_of([], "2026-01-05", 8),
        "rest, assessed later": rank_of([], "2026-01-12", 4),
    }
    assert sorted(ranks, key=ranks.__getitem__) == list(ranks)
    assert ranks["overdue"] == ("2|2026-03-01T09:00:00.000000+00:00|2026-01-05|"
                                "00000000000000000003")
    assert ranks["rest, assessed later"] == "3||2026-01-12|00000000000000000004"

