"""The episode page over HTTP (no browser): the README scenario's summary, chart tables and
decisions; the record-assessment form (PRG, errors in place, nothing stored on bad input or
without the CSRF token); the alert forms (acknowledge, resolve, twice: 409 on the page); roles
(auditor reads the audit table and gets no forms, researcher 403) and clinic isolation (404)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from api import create_app
from api.auth import DevIssuer, dev_key_path
from bootstrap import Settings, build

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
LOOPBACK = ("127.0.0.1", 50000)
SCENARIO = [("2026-01-05", 18), ("2026-01-12", 16), ("2026-01-19", 13), ("2026-01-26", 8),
            ("2026-02-02", 6), ("2026-02-09", 4), ("2026-02-16", 3), ("2026-02-23", 4),
            ("2026-03-02", 2)]
ACNP_HASH = "9a32a58c03653ca7a79532bf8d48ec9b1948f368df88c8e409d05a2ab0290aec"
SUMMARY = ("PHQ-9 fell from 18 to 2 over 8 weeks: response on 26 Jan 2026, "
           "full remission since 2 Mar 2026")
ITEM9 = [2, 2, 2, 2, 2, 2, 2, 2, 1]  # PHQ-9 17 with item 9 answered 1: a safety alert


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(persistence="memory", sqlite_path=tmp_path / "outcomes.sqlite",
                    allowed_hosts="testserver", rate_limit="off")


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    services = build(settings, clock=lambda: NOW)
    try:
        with TestClient(create_app(settings, services=services), client=LOOPBACK) as test_client:
            yield test_client
    finally:
        services.close()


def bearer(settings: Settings, sub: str = "dr-lee", roles: tuple[str, ...] = ("clinician",),
           clinics: tuple[str, ...] = ("clinic-north",)) -> dict[str, str]:
    token = DevIssuer(dev_key_path(settings)).mint(sub=sub, roles=roles, clinics=clinics, ttl=600)
    return {"Authorization": f"Bearer {token}"}


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field in the page"
    return found[1]


def sign_in(client: TestClient, user: str = "dr-lee") -> None:
    client.cookies.clear()
    form = client.get("/ui/sign-in")
    reply = client.post("/ui/sign-in", data={"csrf": csrf_of(form.text), "user": user},
                        follow_redirects=False)
    assert reply.status_code == 303, reply.text


@pytest.fixture
def episode(client: TestClient, settings: Settings) -> str:
    """The README's scenario: pt-7f3a at clinic-north under acnp2006, nine weekly PHQ-9 totals."""
    headers = bearer(settings)
    opened = client.post("/episodes", headers=headers, json={
        "patient_ref": "pt-7f3a", "clinic_id": "clinic-north", "criteria": "acnp2006",
        "opened_on": "2026-01-05"})
    assert opened.status_code == 201, opened.text
    episode_id = opened.json()["episode_id"]
    for on, total in SCENARIO:
        reply = client.post(f"/episodes/{episode_id}/assessments", headers=headers, json={
            "assessment_id": f"phq-{on}", "instrument": "PHQ-9", "administered_on": on,
            "total": total})
        assert reply.status_code == 201, reply.text
    return str(episode_id)


def version(client: TestClient, episode_id: str) -> int:
    return int(client.app.state.services.app.get_episode(UUID(episode_id)).version)


def section(html: str, section_id: str) -> str:
    found = re.search(rf'<section id="{section_id}".*?</section>', html, re.S)
    assert found, f"no section {section_id}"
    return found[0]


def table_rows(html: str, table_id: str) -> list[list[str]]:
    found = re.search(rf'<table id="{table_id}">.*?<tbody>(.*?)</tbody>', html, re.S)
    assert found, f"no table {table_id}"
    return [[re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", found[1], re.S)]


def page_of(client: TestClient, episode_id: str, **params: str) -> str:
    reply = client.get(f"/ui/episodes/{episode_id}", params=params)
    assert reply.status_code == 200, reply.text
    return reply.text


def test_the_scenario_shows_its_summary_its_points_and_two_decisions_with_their_criteria(
        client, episode):
    sign_in(client)
    html = page_of(client, episode)
    main = html.split('<main id="main" tabindex="-1">')[1]
    assert main.lstrip().startswith(f'<p id="summary" class="summary">{SUMMARY}</p>')
    assert html.count("<h1>") == 1 and "<h1>Episode of pt-7f3a</h1>" in html
    assert '<figure id="chart-phq-9">' in html and "<figcaption>PHQ-9 scores by date" in html
    chart = re.search(r'<figure id="chart-phq-9">.*?</figure>', html, re.S)[0]
    assert re.search(r'<svg[^>]* role="img"', chart)
    assert 'aria-labelledby="chart-phq-9-svg-title chart-phq-9-svg-desc"' in chart
    assert '<title id="chart-phq-9-svg-title">PHQ-9 scores by date</title>' in chart
    assert "<script" not in chart and "href=\"http" not in chart
    rows = table_rows(html, "table-phq-9")
    assert len(rows) == 9
    assert rows[0] == ["5 Jan 2026", "1", "18", "moderately severe", "no"]
    assert rows[-1] == ["2 Mar 2026", "9", "2", "minimal", "no"]
    decisions = section(html, "decisions")
    assert "<h2 id=\"decisions-heading\">Stage decisions</h2>" in decisions
    items = re.findall(r"<li.*?</li>", decisions, re.S)
    assert len(items) == 2
    assert "PHQ-9 fell from 18 to 8 (56% ≥ 50%) on 2026-01-26: response under acnp2006 v1.0.0" \
        in items[0] and '<time datetime="2026-01-26">26 Jan 2026</time>' in items[0]
    assert "full remission under acnp2006 v1.0.0" in items[1]
    for item in items:
        assert "Criteria acnp2006 v1.0.0" in item
        assert f'<code title="{ACNP_HASH}">{ACNP_HASH[:12]}</code>' in item
        assert "retracted" not in item
    assert "The audit trail is for auditors" in section(html, "audit")
    assert "<table" not in section(html, "audit")


def test_the_late_form_is_recorded_through_the_form_and_the_remission_listed_retracted(
        client, episode):
    sign_in(client, "dr-okafor")
    html = page_of(client, episode)
    form = re.search(r'<form id="record-assessment".*?</form>', html, re.S)[0]
    assert f'action="/ui/episodes/{episode}/assessments"' in form
    for i in range(1, 11):
        assert f'<label for="f-item_{i}">Item {i}' in form and f'name="item_{i}"' in form
    assessment_id = re.search(r'name="assessment_id" value="([^"]+)"', form)[1]
    items = {f"item_{i}": "1" for i in range(1, 8)} | {"item_8": "0", "item_9": "0"}
    reply = client.post(f"/ui/episodes/{episode}/assessments", follow_redirects=False, data={
        "csrf": csrf_of(html), "instrument": "PHQ-9", "administered_on": "2026-02-20",
        "assessment_id": assessment_id, **items, "item_10": ""})
    assert reply.status_code == 303
    assert reply.headers["location"] == f"/ui/episodes/{episode}?recorded={assessment_id}"
    after = client.get(reply.headers["location"]).text
    assert re.search(r'<div id="flash" role="status"[^>]*>Recorded PHQ-9 7 on 20 Feb 2026 '
                     r'\(mild\)\. Stage now: response\.</div>', after)
    assert ('<p id="summary" class="summary">PHQ-9 fell from 18 to 2 over 8 weeks: '
            'response since 26 Jan 2026</p>') in after
    assert len(re.findall(r"<li", section(after, "decisions"))) == 1
    assert len(table_rows(after, "table-phq-9")) == 10
    recorded = client.app.state.services.app.assessments(UUID(episode))
    late = next(a for a in recorded if a.assessment_id == assessment_id)
    assert (late.recorded_by, late.items, late.total) == ("dr-okafor", (1,) * 7 + (0, 0), 7)

    shown = section(page_of(client, episode, retracted="1"), "decisions")
    items_html = re.findall(r"<li.*?</li>", shown, re.S)
    assert len(items_html) == 2
    assert "retracted" not in items_html[0]
    assert '<li class="retracted">' in items_html[1] and ">retracted</span>" in items_html[1]
    assert "full remission under acnp2006 v1.0.0" in items_html[1]
    assert re.search(r"<p>Retracted by dr-okafor at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC: "
                     r"RemissionReached of 2026-03-02 no longer holds after assessment "
                     + re.escape(assessment_id), items_html[1])


def test_a_bad_item_rerenders_422_with_the_error_in_place_and_stores_nothing(client, episode):
    sign_in(client)
    html = page_of(client, episode)
    before = version(client, episode)
    items = {f"item_{i}": "1" for i in range(1, 10)} | {"item_4": "4"}
    reply = client.post(f"/ui/episodes/{episode}/assessments", data={
        "csrf": csrf_of(html), "instrument": "PHQ-9", "administered_on": "2026-03-09", **items})
    assert reply.status_code == 422
    assert '<div id="form-errors" role="alert" class="errors">' in reply.text
    assert re.search(r'id="f-item_4" name="item_4"[^>]*value="4" aria-invalid="true" '
                     r'aria-describedby="err-item_4"', reply.text)
    assert re.search(r'<p id="err-item_4" class="error">PHQ-9: item 4 must be a whole number '
                     r'0\.\.3</p>', reply.text)
    assert 'aria-invalid' not in re.search(r'<input[^>]*id="f-item_3"[^>]*>', reply.text)[0]
    assert 'value="2026-03-09"' in reply.text  # what was typed is kept
    assert version(client, episode) == before
    assert len(client.app.state.services.app.assessments(UUID(episode))) == 9


@pytest.mark.parametrize("fields, field, message", [
    ({"administered_on": "2026-03-20"}, "administered_on", "administered_on 2026-03-20 is in the future"),
    ({"administered_on": ""}, "administered_on", "not an ISO date"),
    ({"item_2": "x"}, "item_2", "item 2 must be a whole number"),
    ({f"item_{i}": "" for i in range(1, 10)}, "total", "PHQ-9: give items or a total"),
    ({f"item_{i}": "" for i in range(1, 10)} | {"total": "28"}, "total",
     "PHQ-9: total 28 is outside 0..27"),
])
def test_other_bad_fields_are_shown_in_place(client, episode, fields, field, message):
    sign_in(client)
    html = page_of(client, episode)
    data = {"csrf": csrf_of(html), "instrument": "PHQ-9", "administered_on": "2026-03-09",
            **{f"item_{i}": "1" for i in range(1, 10)}} | fields
    before = version(client, episode)
    reply = client.post(f"/ui/episodes/{episode}/assessments", data=data)
    assert reply.status_code == 422
    assert f'aria-describedby="err-{field}"' in reply.text
    assert re.search(rf'<p id="err-{field}" class="error">[^<]*{re.escape(message)}', reply.text)
    assert version(client, episode) == before


def test_a_total_only_instrument_takes_a_total(client, episode):
    sign_in(client)
    html = page_of(client, episode, record="HAM-D17")
    form = re.search(r'<form id="record-assessment".*?</form>', html, re.S)[0]
    assert 'name="item_1"' not in form and '<label for="f-total">Total (0–52 points)</label>' in form
    assert '<input type="hidden" name="instrument" value="HAM-D17">' in form
    reply = client.post(f"/ui/episodes/{episode}/assessments", follow_redirects=False, data={
        "csrf": csrf_of(html), "instrument": "HAM-D17", "administered_on": "2026-03-09",
        "total": "53"})
    assert reply.status_code == 422 and 'aria-describedby="err-total"' in reply.text
    assert '<input type="hidden" name="instrument" value="HAM-D17">' in reply.text
    reply = client.post(f"/ui/episodes/{episode}/assessments", follow_redirects=False, data={
        "csrf": csrf_of(html), "instrument": "HAM-D17", "administered_on": "2026-03-09",
        "total": "12"})
    assert reply.status_code == 303
    after = client.get(reply.headers["location"]).text
    assert '<figure id="chart-ham-d17">' in after
    assert table_rows(after, "table-ham-d17") == [["9 Mar 2026", "1", "12", "–", "no"]]
    gad = page_of(client, episode, record="GAD-7")
    assert 'name="item_8"' in gad and 'name="item_9"' not in gad
    assert client.get(f"/ui/episodes/{episode}", params={"record": "XYZ"}).status_code == 422


def test_without_the_csrf_token_the_form_is_refused_and_nothing_stored(client, episode):
    sign_in(client)
    page_of(client, episode)
    before = version(client, episode)
    for csrf in (None, "forged"):
        data = {"instrument": "PHQ-9", "administered_on": "2026-03-09",
                **{f"item_{i}": "1" for i in range(1, 10)}} | ({"csrf": csrf} if csrf else {})
        reply = client.post(f"/ui/episodes/{episode}/assessments", data=data,
                            follow_redirects=False)
        assert reply.status_code == 400 and "<h1>Bad request</h1>" in reply.text
    assert version(client, episode) == before


@pytest.fixture
def alert(client: TestClient, settings: Settings, episode: str) -> str:
    """A safety alert on the scenario's episode (PHQ-9 item 9 answered 1 on 2026-03-09)."""
    reply = client.post(f"/episodes/{episode}/assessments", headers=bearer(settings), json={
        "instrument": "PHQ-9", "administered_on": "2026-03-09", "items": ITEM9})
    assert reply.status_code == 201, reply.text
    (found,) = [a for a in client.app.state.services.app.alerts(UUID(episode))
                if a.kind == "safety"]
    return str(found.alert_id)


def test_acknowledge_and_resolve_through_the_forms_and_twice_is_409_on_the_page(
        client, episode, alert):
    sign_in(client)
    html = page_of(client, episode)
    article = re.search(rf'<article id="alert-{alert}".*?</article>', html, re.S)[0]
    assert '<span class="badge badge-safety">Safety alert</span>' in article
    assert "State: <strong>Open</strong>" in article
    ack = f"/ui/episodes/{episode}/alerts/{alert}/acknowledge"
    resolve = f"/ui/episodes/{episode}/alerts/{alert}/resolve"
    assert f'action="{ack}"' in article and f'action="{resolve}"' in article
    assert '<option value="contacted_patient">Contacted the patient</option>' in article
    assert ">Acknowledge</button>" in article and ">Resolve</button>" in article
    csrf = csrf_of(html)

    bad = client.post(ack, data={"csrf": csrf, "action": "shrugged", "note": ""})
    assert bad.status_code == 422
    assert f'aria-describedby="err-action-{alert}"' in bad.text
    assert f'<p id="err-action-{alert}">action must be one of' in bad.text

    reply = client.post(ack, data={"csrf": csrf, "action": "contacted_patient",
                                   "note": "called, safe"}, follow_redirects=False)
    assert (reply.status_code, reply.headers["location"]) == (
        303, f"/ui/episodes/{episode}#alert-{alert}")
    (state,) = [a for a in client.app.state.services.app.alerts(UUID(episode))
                if a.alert_id == alert]
    assert (state.status, state.acknowledged_by, state.action, state.note) == (
        "acknowledged", "dr-lee", "contacted_patient", "called, safe")
    after = page_of(client, episode)
    article = re.search(rf'<article id="alert-{alert}".*?</article>', after, re.S)[0]
    assert "State: <strong>Acknowledged</strong>; acknowledged by dr-lee at" in article
    assert f'action="{ack}"' not in article and f'action="{resolve}"' in article

    before = version(client, episode)
    twice = client.post(ack, data={"csrf": csrf, "action": "contacted_patient", "note": ""})
    assert twice.status_code == 409
    assert re.search(rf'<div id="alert-errors-{alert}" role="alert" class="errors">\s*<p>[^<]+</p>',
                     twice.text)
    assert version(client, episode) == before

    reply = client.post(resolve, data={"csrf": csrf, "reason": "safety plan in place"},
                        follow_redirects=False)
    assert reply.status_code == 303
    (state,) = [a for a in client.app.state.services.app.alerts(UUID(episode))
                if a.alert_id == alert]
    assert (state.status, state.resolved_by, state.resolution) == (
        "resolved", "dr-lee", "safety plan in place")
    twice = client.post(resolve, data={"csrf": csrf, "reason": "again"})
    assert twice.status_code == 409 and f'id="alert-errors-{alert}"' in twice.text
    resolved = re.search(rf'<article id="alert-{alert}".*?</article>', twice.text, re.S)[0]
    assert "State: <strong>Resolved</strong>" in resolved and "<form" not in resolved
    missing = client.post(f"/ui/episodes/{episode}/alerts/no-such-alert/resolve",
                          data={"csrf": csrf, "reason": "x"})
    assert missing.status_code == 404


def test_the_auditor_sees_the_audit_table_and_no_forms_and_may_not_post(client, episode, alert):
    sign_in(client, "auditor-ng")
    html = page_of(client, episode)
    assert "record-assessment" not in html and "/acknowledge" not in html and "/resolve" not in html
    audit = section(html, "audit")
    rows = re.findall(r"<tr>\s*<td>(\d+)</td>\s*<td>(\d+)</td>\s*<td>([A-Za-z]+)</td>", audit)
    assert [r[2] for r in rows[:2]] == ["Opened", "AssessmentRecorded"]
    assert len(rows) == version(client, episode)  # every event, one page
    assert " UTC</td>" in audit and "<td>dr-lee</td>" in audit and "Next page" not in audit
    later = section(page_of(client, episode, audit_cursor=rows[4][0]), "audit")
    assert re.findall(r"<tr>\s*<td>(\d+)</td>", later)[0] == rows[5][0]
    assert client.get(f"/ui/episodes/{episode}", params={"audit_cursor": "-1"}).status_code == 422
    for path, data in ((f"/ui/episodes/{episode}/assessments",
                        {"instrument": "PHQ-9", "administered_on": "2026-03-09", "total": "3"}),
                       (f"/ui/episodes/{episode}/alerts/{alert}/acknowledge",
                        {"action": "other", "note": ""})):
        reply = client.post(path, data={"csrf": csrf_of(html), **data})
        assert reply.status_code == 403 and "needs the role clinician" in reply.text


def test_the_audit_table_pages_by_fifty(client, settings, episode):
    headers = bearer(settings)
    for n in range(45):  # 10 events so far, more than 55 after (GAD-7 stages nothing): two pages
        on = date.fromordinal(date(2026, 3, 3).toordinal() + n % 5).isoformat()
        reply = client.post(f"/episodes/{episode}/assessments", headers=headers, json={
            "assessment_id": f"extra-{n}", "instrument": "GAD-7", "administered_on": on,
            "total": 5})
        assert reply.status_code == 201, reply.text
    sign_in(client, "auditor-ng")
    audit = section(page_of(client, episode), "audit")
    positions = re.findall(r"<tr>\s*<td>(\d+)</td>", audit)
    assert len(positions) == 50
    link = re.search(r'<a href="([^"]+)">Next page</a>', audit)[1].replace("&amp;", "&")
    assert link == f"/ui/episodes/{episode}?audit_cursor={positions[-1]}"
    rest = re.findall(r"<tr>\s*<td>(\d+)</td>", section(client.get(link).text, "audit"))
    assert len(rest) == version(client, episode) - 50 and int(rest[0]) > int(positions[-1])


def test_another_clinics_episode_and_a_malformed_id_are_404_and_a_researcher_403(
        client, settings, episode):
    sign_in(client, "dr-ruiz")  # clinic-south
    other = client.get(f"/ui/episodes/{episode}")
    missing = client.get("/ui/episodes/00000000-0000-4000-8000-000000000000")
    assert (other.status_code, missing.status_code) == (404, 404)
    assert "<h1>Not found</h1>" in other.text and f"no episode {episode}" in other.text
    assert client.get("/ui/episodes/not-a-uuid").status_code == 404
    html = client.get("/ui/sign-in").text  # a session with a CSRF token
    reply = client.post(f"/ui/episodes/{episode}/assessments", data={
        "csrf": csrf_of(html), "instrument": "PHQ-9", "administered_on": "2026-03-09",
        "total": "3"})
    assert reply.status_code == 404
    researcher = client.get(f"/ui/episodes/{episode}",
                            headers=bearer(settings, "res-park", ("researcher",)))
    assert researcher.status_code == 403 and "needs the role clinician or auditor" in researcher.text


def test_voided_points_and_the_session_axis_on_demand(client, settings, episode):
    reply = client.post(f"/episodes/{episode}/assessments/phq-2026-01-19/void",
                        headers=bearer(settings), json={"reason": "wrong patient"})
    assert reply.status_code == 200, reply.text
    sign_in(client)
    html = page_of(client, episode)
    rows = table_rows(html, "table-phq-9")
    assert len(rows) == 8 and "19 Jan 2026" not in [r[0] for r in rows]
    shown = table_rows(page_of(client, episode, voided="1"), "table-phq-9")
    assert len(shown) == 9
    assert shown[2] == ["19 Jan 2026", "3", "13", "moderate", "voided: wrong patient"]
    assert [r[1] for r in shown] == [str(n) for n in range(1, 10)]
    session = page_of(client, episode, axis="session", voided="1")
    assert '<option value="session" selected>Session</option>' in session
    assert 'id="o-voided" name="voided" value="1" checked' in session
    assert "<figcaption>PHQ-9 scores by session" in session
    assert client.get(f"/ui/episodes/{episode}", params={"axis": "bogus"}).status_code == 422


def test_the_expected_recovery_band_when_a_curve_watches_the_episode(client, episode):
    from domain.signals.curves import BandCurve, RecoveryCurve
    from domain.signals.packs import get_rule_pack

    pack = get_rule_pack("expected-recovery")
    band = BandCurve(band="moderately severe", episodes=240, observations=1310, intercept=16.0,
                     slope=-4.0, cov=(0.25, -0.1, 0.04), scale=9.0, t_quantile=1.3)
    curve = RecoveryCurve(
        clinic_id="clinic-north", instrument="PHQ-9", probability="0.8", min_episodes=30,
        fitted_at=datetime(2026, 1, 1, 12, 0, tzinfo=UTC), as_of=date(2025, 12, 31),
        episodes=252, episode_ids_hash="0" * 64, bands=(band,),
        band_counts={"moderately severe": 240}, pack=pack.ref())
    sign_in(client)
    assert "expected-recovery band" not in page_of(client, episode)
    client.app.state.services.app.watch_signals(
        UUID(episode), packs=[pack.describe()], curve=curve.describe(), reason="clinic fit",
        recorded_by="dr-lee")
    figure = re.search(r'<figure id="chart-phq-9">.*?</figure>', page_of(client, episode), re.S)[0]
    assert "the expected-recovery band of the clinic&#39;s curve" in figure


def test_with_runners_the_redirect_waits_for_the_read_models_to_reach_the_command(tmp_path):
    from types import SimpleNamespace

    from api.ui.episode import settle

    waited: list[tuple[str, int, float]] = []
    read_models = SimpleNamespace(wait=lambda name, position, timeout: waited.append(
        (name, position, timeout)) or True)

    def request(projections: str) -> SimpleNamespace:
        settings = Settings(persistence="memory", sqlite_path=tmp_path / "o.sqlite",
                            projections=projections, min_position_timeout=2.5)
        return SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(
            settings=settings, services=SimpleNamespace(read_models=read_models))))

    settle(request("inline"), 12)  # type: ignore[arg-type]
    settle(request("runners"), None)  # type: ignore[arg-type]
    assert waited == []
    settle(request("runners"), 12)  # type: ignore[arg-type]
    assert waited == [("stages", 12, 2.5), ("episodes", 12, 2.5)]


def test_a_form_sent_twice_is_stored_once_and_a_closed_episode_is_409_on_the_page(
        client, settings, episode):
    sign_in(client)
    html = page_of(client, episode)
    assessment_id = re.search(r'name="assessment_id" value="([^"]+)"', html)[1]
    data = {"csrf": csrf_of(html), "instrument": "PHQ-9", "administered_on": "2026-03-09",
            "assessment_id": assessment_id, **{f"item_{i}": "0" for i in range(1, 10)}}
    first = client.post(f"/ui/episodes/{episode}/assessments", data=data, follow_redirects=False)
    stored = version(client, episode)
    again = client.post(f"/ui/episodes/{episode}/assessments", data=data, follow_redirects=False)
    assert (first.status_code, again.status_code) == (303, 303)
    assert again.headers["location"] == first.headers["location"]
    assert version(client, episode) == stored  # the same id and content: replayed
    changed = client.post(f"/ui/episodes/{episode}/assessments",
                          data=data | {"item_1": "1"}, follow_redirects=False)
    assert changed.status_code == 409 and '<div id="form-errors" role="alert"' in changed.text
    closed = client.post(f"/episodes/{episode}/close", headers=bearer(settings),
                         json={"discharged_on": "2026-03-10"})
    assert closed.status_code == 200, closed.text
    before = version(client, episode)
    late = client.post(f"/ui/episodes/{episode}/assessments",
                       data=data | {"assessment_id": "another"}, follow_redirects=False)
    assert late.status_code == 409 and '<div id="form-errors" role="alert"' in late.text
    assert version(client, episode) == before


def test_a_same_day_correction_supersedes_the_earlier_score_as_the_rules_do(client, settings):
    """G2 (ADR 0011): PHQ-9 18 on 5 Jan corrected to 14 the same day, then 8 on 26 Jan. The
    rules stage 14 -> 8 (6/14 = 43% < 50%: no response), so the page does too; the 18 is not
    drawn nor numbered, and is listed only with voided=1, marked superseded."""
    headers = bearer(settings)
    episode = client.post("/episodes", headers=headers, json={
        "patient_ref": "pt-a", "clinic_id": "clinic-north", "criteria": "acnp2006",
        "opened_on": "2026-01-05"}).json()["episode_id"]
    for aid, on, total in [("a1", "2026-01-05", 18), ("a1-fix", "2026-01-05", 14),
                           ("a2", "2026-01-26", 8)]:
        reply = client.post(f"/episodes/{episode}/assessments", headers=headers, json={
            "assessment_id": aid, "instrument": "PHQ-9", "administered_on": on, "total": total})
        assert reply.status_code == 201, reply.text
    sign_in(client)
    html = page_of(client, episode)
    assert ('<p id="summary" class="summary">PHQ-9 fell from 14 to 8 over 3 weeks: '
            'no stage decision yet</p>') in html
    assert table_rows(html, "table-phq-9") == [["5 Jan 2026", "1", "14", "moderate", "no"],
                                               ["26 Jan 2026", "2", "8", "mild", "no"]]
    chart = re.search(r'<figure id="chart-phq-9">.*?</figure>', html, re.S)[0]
    assert "2 PHQ-9 scores from 5 Jan 2026 to 26 Jan 2026; first 14, latest 8 points" in chart
    assert "PHQ-9 18 on" not in chart
    shown = page_of(client, episode, voided="1")
    assert table_rows(shown, "table-phq-9") == [
        ["5 Jan 2026", "–", "18", "moderately severe",
         "voided: superseded by a later entry the same day"],
        ["5 Jan 2026", "1", "14", "moderate", "no"], ["26 Jan 2026", "2", "8", "mild", "no"]]
    chart = re.search(r'<figure id="chart-phq-9">.*?</figure>', shown, re.S)[0]
    assert "PHQ-9 18 on" not in chart and "2 PHQ-9 scores from" in chart


def test_an_itemised_instrument_takes_a_total_only_through_the_form(client, episode):
    """The API takes {"total": 12} for PHQ-9; so does the form (items OR a total)."""
    sign_in(client)
    html = page_of(client, episode)
    form = re.search(r'<form id="record-assessment".*?</form>', html, re.S)[0]
    assert '<label for="f-total">Or the total only (points, 0–27)</label>' in form
    assert 'name="item_1"' in form and 'name="total"' in form
    reply = client.post(f"/ui/episodes/{episode}/assessments", follow_redirects=False, data={
        "csrf": csrf_of(html), "instrument": "PHQ-9", "administered_on": "2026-03-09",
        "assessment_id": "phq-total", "total": "12", **{f"item_{i}": "" for i in range(1, 11)}})
    assert reply.status_code == 303, reply.text
    stored = next(a for a in client.app.state.services.app.assessments(UUID(episode))
                  if a.assessment_id == "phq-total")
    assert (stored.items, stored.reported_total, stored.total) == (None, 12, 12)


def test_a_form_sent_back_with_errors_keeps_the_pages_view_options(client, episode):
    sign_in(client)
    html = page_of(client, episode, axis="session", voided="1", retracted="1")
    action = f"/ui/episodes/{episode}/assessments?axis=session&amp;voided=1&amp;retracted=1"
    assert f'action="{action}"' in html
    reply = client.post(action.replace("&amp;", "&"), data={
        "csrf": csrf_of(html), "instrument": "PHQ-9", "administered_on": "2026-03-09"})
    assert reply.status_code == 422 and 'aria-describedby="err-total"' in reply.text
    assert '<option value="session" selected>Session</option>' in reply.text
    assert 'id="o-voided" name="voided" value="1" checked' in reply.text
    assert f'action="{action}"' in reply.text
