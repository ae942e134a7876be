"""The clinic outcomes, re-scoring run and criteria pages over HTTP (no browser), with the
clock stopped at 2027-12-31 UTC: the figures they show are the read models' (the same the API
returns), by month of discharge too; roles and clinic isolation as in the API."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from api import create_app
from api.auth import DevIssuer, dev_key_path
from bootstrap import Services, Settings, build
from domain.criteria.builtin import BUILTIN

NOW = datetime(2027, 12, 31, tzinfo=UTC)
LOOPBACK = ("127.0.0.1", 50000)
NORTH = "/ui/clinics/clinic-north/outcomes"
# A PHQ-9 course (tests/api/api_helpers.V1): response, remission, recovery under frank1991.
V1 = [("2026-01-05", 18), ("2026-01-12", 16), ("2026-01-19", 13), ("2026-01-26", 8),
      ("2026-02-02", 6), ("2026-02-09", 4), ("2026-02-16", 3), ("2026-02-23", 4),
      ("2026-03-02", 2), ("2026-03-16", 3), ("2026-03-30", 2), ("2026-04-13", 2),
      ("2026-04-27", 3), ("2026-05-11", 2), ("2026-05-25", 3), ("2026-06-08", 2),
      ("2026-06-22", 1)]
# Response (18 -> 9: 50 %), partial remission, then relapse under frank1991.
V2 = [("2026-01-05", 18), ("2026-01-19", 12), ("2026-02-02", 9), ("2026-02-16", 9),
      ("2026-03-02", 11)]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(persistence="memory", sqlite_path=tmp_path / "outcomes.sqlite",
                    allowed_hosts="testserver", rate_limit="off")


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    services = build(settings, clock=lambda: NOW)
    try:
        yield services
    finally:
        services.close()


@pytest.fixture
def client(settings: Settings, services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(settings, services=services), client=LOOPBACK) as test_client:
        yield test_client


def auth(settings: Settings, role: str = "researcher",
         clinics: tuple[str, ...] = ("clinic-north",), sub: str = "res-park") -> dict[str, str]:
    token = DevIssuer(dev_key_path(settings)).mint(sub=sub, roles=(role,), clinics=clinics,
                                                   ttl=600)
    return {"Authorization": f"Bearer {token}"}


def episode(services: Services, rows: list[tuple[str, int]], *, closed: str | None = None,
            criteria: str = "acnp2006", clinic: str = "clinic-north") -> UUID:
    """An episode opened on 2026-01-05 with total-only PHQ-9 ``rows``, discharged on ``closed``."""
    app = services.app
    episode_id = app.open_episode(patient_ref=f"p-{len(rows)}-{closed}", clinic_id=clinic,
                                  recorded_by="dr-lee", criteria=criteria,
                                  opened_on=date(2026, 1, 5)).episode_id
    for on, total in rows:
        app.record_assessment(episode_id, instrument="PHQ-9", administered=date.fromisoformat(on),
                              total=total, recorded_by="dr-lee")
    if closed:
        app.close_episode(episode_id, discharged_on=date.fromisoformat(closed),
                          recorded_by="dr-lee")
    return episode_id


def table(page: str, table_id: str) -> list[list[str]]:
    """The rows of ``<table id=table_id>``'s body as cell texts (tags dropped, spaces folded)."""
    found = re.search(rf'<table id="{table_id}"[^>]*>(.*?)</table>', page, re.S)
    assert found, f"no table {table_id}"
    body = found[1].split("<tbody>", 1)[1]
    return [[" ".join(html.unescape(re.sub(r"<[^>]+>", " ", cell)).split())
             for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def section(page: str, section_id: str) -> str:
    found = re.search(rf'<section id="{section_id}"[^>]*>(.*?)</section>', page, re.S)
    assert found, f"no section {section_id}"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", found[1])).split())


# -- clinic outcomes --------------------------------------------------------------------------

@pytest.fixture
def cohort(services: Services) -> dict[str, UUID]:
    """clinic-north under acnp2006: two discharged in February 2026 (one response of two), two
    in March (one response; one baseline below the threshold: not evaluable), one open (a
    response, in no month); clinic-south's one episode counts nowhere here."""
    return {
        "feb-response": episode(services, [("2026-01-05", 20), ("2026-02-02", 8)],
                                closed="2026-02-20"),
        "feb-none": episode(services, [("2026-01-05", 20), ("2026-02-02", 18)],
                            closed="2026-02-25"),
        "mar-response": episode(services, [("2026-01-05", 20), ("2026-02-16", 9)],
                                closed="2026-03-10"),
        "mar-below": episode(services, [("2026-01-05", 4), ("2026-02-16", 3)],
                             closed="2026-03-15"),
        "open": episode(services, [("2026-01-05", 20), ("2026-02-16", 5)]),
        "south": episode(services, [("2026-01-05", 20), ("2026-02-02", 8)],
                         closed="2026-02-20", clinic="clinic-south"),
    }


def test_the_outcomes_page_shows_the_apis_figures_and_the_rates_by_month(client, settings,
                                                                       cohort):
    headers = auth(settings)
    api = client.get("/clinics/clinic-north/outcomes", headers=headers).json()
    page = client.get(NORTH, headers=headers)
    assert page.status_code == 200
    rates = {row[0]: row[1:] for row in table(page.text, "rates")}
    assert rates["Episodes"] == [str(api["episodes"]), ""] == ["5", ""]
    assert rates["Closed (discharged)"] == ["4", ""]
    assert rates["Baseline below threshold"] == ["1", ""]
    assert rates["Evaluable"] == ["4", ""]
    assert api["counts"]["response"] == 3 and api["rates"]["response"] == 75.0
    assert rates["Response"] == ["3", "75.0 %"]
    assert rates["Full remission"] == ["0", "0.0 %"]
    # median of 28 (20 -> 8 by 2026-02-02), 42 and 42 days to response
    assert api["median_days_to_response"] == 42.0
    assert rates["Median time from baseline to response"] == ["42 days"]
    assert rates["Median time from baseline to full remission"] == ["none reached"]
    assert not any(label.startswith("NHS Talking Therapies") for label in rates)

    by_month = table(page.text, "rates-by-month")
    # Month, discharged, evaluable, response ... recurrence (rate and count), median days
    assert by_month == [
        ["2026-02", "2", "2", "50.0 % (1)", "0.0 % (0)", "0.0 % (0)", "0.0 % (0)", "0.0 % (0)",
         "0.0 % (0)", "28 days"],
        ["2026-03", "2", "1", "100.0 % (1)", "0.0 % (0)", "0.0 % (0)", "0.0 % (0)",
         "0.0 % (0)", "0.0 % (0)", "42 days"]]
    figure = page.text.split('<figure id="chart-rates">', 1)[1].split("</figure>", 1)[0]
    assert 'role="img" aria-labelledby="chart-rates-title chart-rates-desc"' in figure
    assert ("<title id=\"chart-rates-title\">Outcome rates of clinic-north by month of discharge"
            "</title>") in figure
    assert "2026-02 to 2026-03" in figure and "<figcaption>" in figure
    assert '<time datetime="2026-02">2026-02</time>' in page.text


def test_outcomes_by_month_groups_closed_episodes_by_discharge_month(services, cohort):
    view = services.read_models.cohort
    services.read_models.catch_up()
    months = view.outcomes_by_month("clinic-north")
    assert [month for month, _ in months] == ["2026-02", "2026-03"]
    february, march = (figures for _, figures in months)
    assert (february.episodes, february.closed, february.evaluable) == (2, 2, 2)
    assert (february.counts["response"], february.rates["response"]) == (1, 50.0)
    assert february.median_days_to_response == 28.0
    assert (march.episodes, march.below_threshold, march.evaluable) == (2, 1, 1)
    assert march.rates["response"] == 100.0
    assert view.outcomes("clinic-north").episodes == 5  # the open one too
    assert view.overview("clinic-north") == (view.outcomes("clinic-north"), months)
    assert [m for m, _ in view.outcomes_by_month("clinic-south")] == ["2026-02"]
    assert view.outcomes_by_month("clinic-east") == []


def rows_of(view: Any) -> list[tuple[Any, ...]]:
    with view.reading() as cursor:
        cursor.execute("SELECT * FROM episode_outcomes ORDER BY episode_id")
        return [tuple(row) for row in cursor.fetchall()]


def test_the_rebuilt_cohort_read_model_equals_the_incremental_one(services, cohort):
    models = services.read_models
    models.catch_up()
    incremental = rows_of(models.cohort)
    by_month = models.cohort.outcomes_by_month("clinic-north")
    assert len(incremental) == 6
    discharged = {row[0]: row[3] for row in incremental}
    assert discharged[str(cohort["feb-none"])] == "2026-02-25"
    assert discharged[str(cohort["open"])] is None
    assert models.rebuild("cohort") > 0
    assert rows_of(models.cohort) == incremental
    assert models.cohort.outcomes_by_month("clinic-north") == by_month
    assert models.cohort.version == 3


def test_a_clinic_without_a_discharge_says_so(client, settings, services):
    episode(services, [("2026-01-05", 20), ("2026-02-02", 8)])
    page = client.get(NORTH, headers=auth(settings))
    assert page.status_code == 200
    assert 'id="no-discharges"' in page.text
    assert "No episode of clinic-north has been discharged yet" in page.text
    assert table(page.text, "rates-by-month") == [["No episode discharged yet."]]
    assert "<svg" not in page.text
    assert table(page.text, "rates")[0] == ["Episodes", "1", ""]


def test_nhs_talking_therapies_figures_appear_under_an_nhs_tt_set(client, settings, services):
    rows = [("2026-01-05", 18), ("2026-01-19", 12), ("2026-02-02", 6), ("2026-02-16", 4)]
    episode(services, rows, closed="2026-02-20", criteria="nhs-talking-therapies-2024",
            clinic="clinic-south")
    headers = auth(settings, clinics=("clinic-south",))
    api = client.get("/clinics/clinic-south/outcomes", headers=headers).json()
    tt = api["talking_therapies"]
    assert tt is not None and tt["finished_courses"] == 1
    page = client.get("/ui/clinics/clinic-south/outcomes", headers=headers)
    rates = {row[0]: row[1:] for row in table(page.text, "rates")}
    assert rates["NHS Talking Therapies: finished courses"] == ["1", ""]
    for key in ("recovery", "reliable_improvement", "reliable_recovery"):
        label = f"NHS Talking Therapies: {key.replace('_', ' ')}"
        figure = tt[key]
        shown = "none evaluable" if figure["percent"] is None else f"{figure['percent']:.1f} %"
        assert rates[label] == [f"{figure['count']} of {figure['denominator']}", shown]
    by_month = table(page.text, "rates-by-month")
    assert by_month[0][0] == "2026-02" and len(by_month[0]) == 12  # + NHS TT columns


def test_outcomes_roles_and_clinics_as_the_api(client, settings, cohort):
    clinician = client.get(NORTH, headers=auth(settings, "clinician", sub="dr-lee"))
    assert clinician.status_code == 403 and "needs the role researcher" in clinician.text
    other = client.get(NORTH, headers=auth(settings, clinics=("clinic-south",)))
    unknown = client.get("/ui/clinics/clinic-east/outcomes",
                         headers=auth(settings, clinics=("clinic-east",)))
    assert other.status_code == 404
    assert "<h1>Not found</h1>" in other.text and "text/html" in other.headers["content-type"]
    # The caller's own clinic without episodes: the page says so (a researcher's landing page
    # after sign-in); the API answers 404 there, as for another clinic.
    assert unknown.status_code == 200
    assert "No episode has been opened at clinic-east yet" in unknown.text
    assert 'id="rates"' not in unknown.text
    assert client.get("/clinics/clinic-east/outcomes",
                      headers=auth(settings, clinics=("clinic-east",))).status_code == 404


# -- re-scoring runs --------------------------------------------------------------------------

@pytest.fixture
def run(services: Services) -> dict[str, Any]:
    """A shadow run of clinic-north's two frank1991 episodes (V1, V2) under acnp2006, executed
    in this process; clinic-south's episode is not in it."""
    v1 = episode(services, V1, criteria="frank1991")
    v2 = episode(services, V2, criteria="frank1991")
    episode(services, V1, criteria="frank1991", clinic="clinic-south")
    started = services.shadow_runs.request(criteria="acnp2006", clinic_id="clinic-north",
                                           recorded_by="res-park")
    assert services.shadow_runs.execute(started.run_id, workers=1) == "completed"
    return {"run_id": str(started.run_id), "v1": str(v1), "v2": str(v2)}


def test_the_run_page_shows_its_criteria_the_rates_compared_and_the_changes(client, settings,
                                                                          services, run):
    page = client.get(f"/ui/rescorings/{run['run_id']}", headers=auth(settings))
    assert page.status_code == 200
    acnp = BUILTIN["acnp2006"]
    assert f'<code title="{acnp.hash}">{acnp.hash[:12]}</code>' in page.text
    assert "<dt>Status</dt><dd>completed</dd>" in page.text
    # every episode of the store is read (3); clinic-north's 2 are re-scored
    assert ("<dt>Progress</dt><dd>3 of 3 episodes of the store read (100.0 %)</dd>"
            in page.text.replace("\n", ""))
    assert "<dt>Episodes</dt><dd>2 re-scored, 2 would change</dd>" in page.text
    assert "res-park at" in page.text and "2027-12-31 00:00:00 UTC" in page.text
    figures = services.rescorings.run(UUID(run["run_id"]))["figures"]
    compare = {row[0]: row[1:] for row in table(page.text, "rates-compare")}
    for name, label in (("partial_remission", "Partial remission"), ("relapse", "Relapse")):
        now, new = figures["now"]["rates"][name], figures["new"]["rates"][name]
        assert compare[label] == [f"{now:.1f} %", f"{new:.1f} %", f"{new - now:+.1f} points"]
    # V2's partial remission and relapse are not acnp2006 decisions: 100 -> 0 and 50 -> 0
    assert compare["Partial remission"] == ["100.0 %", "0.0 %", "-100.0 points"]
    assert compare["Relapse"] == ["50.0 %", "0.0 %", "-50.0 points"]
    assert compare["Response"] == ["100.0 %", "100.0 %", "no change"]

    changes = table(page.text, "changes")
    expected, _ = services.rescorings.changes(UUID(run["run_id"]))
    assert [row[0] for row in changes] == [item["episode_id"] for item in expected]
    assert sorted(row[0] for row in changes) == sorted((run["v1"], run["v2"]))
    v2 = next(row for row in changes if row[0] == run["v2"])
    assert v2[1:] == ["relapse", "response", "none",
                      "partial remission on 2026-02-16; relapse on 2026-03-02", "none"]
    for item in expected:
        assert f'href="/ui/rescorings/{run["run_id"]}/episodes/{item["episode_id"]}"' in page.text
    assert "Next page" not in page.text


def test_the_changes_are_paged_with_next_page(client, settings, services, run, monkeypatch):
    monkeypatch.setattr("api.ui.pages.PAGE_SIZE", 1)
    headers = auth(settings)
    first = client.get(f"/ui/rescorings/{run['run_id']}", headers=headers)
    link = re.search(r'<a href="([^"]+)">Next page</a>', first.text)
    assert link and len(table(first.text, "changes")) == 1
    second = client.get(html.unescape(link[1]), headers=headers)
    assert second.status_code == 200 and "Next page" not in second.text
    seen = [table(first.text, "changes")[0][0], table(second.text, "changes")[0][0]]
    assert seen == sorted((run["v1"], run["v2"]))


def test_a_run_not_yet_executed_shows_its_status_and_no_figures(client, settings, services):
    episode(services, V2, criteria="frank1991")
    started = services.shadow_runs.request(criteria="acnp2006", clinic_id="clinic-north",
                                           recorded_by="res-park")
    page = client.get(f"/ui/rescorings/{started.run_id}", headers=auth(settings))
    assert page.status_code == 200
    assert "<dt>Status</dt><dd>requested</dd>" in page.text
    assert table(page.text, "rates-compare") == [
        ["The figures appear once the run has completed (status: requested)."]]
    assert table(page.text, "changes") == [["No episode would change so far."]]
    long = client.get(f"/ui/rescorings/{started.run_id}", params={"cursor": "x" * 65},
                      headers=auth(settings))
    assert long.status_code == 422 and "<h1>Invalid input</h1>" in long.text


def test_home_links_a_researchers_outcomes_and_the_criteria(client, settings):
    page = client.get("/ui/", headers=auth(settings))
    assert '<a href="/ui/clinics/clinic-north/outcomes">Outcomes of clinic-north</a>' in page.text
    assert "Caseload of clinic-north</a>" not in page.text.split('<main id="main"', 1)[1]
    assert '<a href="/ui/criteria">Criteria sets</a>' in page.text


def test_before_and_after_show_each_decision_and_mark_the_differences(client, settings,
                                                                     services, run):
    url = f"/ui/rescorings/{run['run_id']}/episodes/{run['v2']}"
    page = client.get(url, headers=auth(settings))
    assert page.status_code == 200
    before, after = section(page.text, "before"), section(page.text, "after")
    frank, acnp = BUILTIN["frank1991"], BUILTIN["acnp2006"]
    assert before.count("Criteria frank1991") == 3 and frank.hash[:12] in before
    assert "Response on 2026-02-02" in before and "Response on 2026-02-02" in after
    assert "Removed: Partial remission on 2026-02-16 (onset 2026-02-02)" in before
    assert "Removed: Relapse on 2026-03-02" in before
    assert "PHQ-9 rose to 11" in before  # each decision's explanation
    assert after.count("Criteria acnp2006") == 1 and acnp.hash[:12] in after
    assert "Added" not in after and "Removed" not in after

    moved = client.get(f"/ui/rescorings/{run['run_id']}/episodes/{run['v1']}",
                       headers=auth(settings))
    before, after = section(moved.text, "before"), section(moved.text, "after")
    result = services.rescorings.episode(UUID(run["run_id"]), UUID(run["v1"]))
    for m in result["diff"]["moved"]:
        assert f"Moved to {m['to']}:" in before and f"Moved from {m['from']}:" in after
    assert "Moved to 2026-03-02: Full remission on 2026-02-23" in before
    assert "Moved from 2026-04-13: Recovery on 2026-06-22" in after
    assert "Removed: Partial remission on 2026-02-09" in before


def test_run_pages_roles_and_clinics_as_the_api(client, settings, services, run):
    pages = (f"/ui/rescorings/{run['run_id']}",
             f"/ui/rescorings/{run['run_id']}/episodes/{run['v1']}")
    for url in pages:
        assert client.get(url, headers=auth(settings)).status_code == 200
        clinician = client.get(url, headers=auth(settings, "clinician", sub="dr-lee"))
        assert clinician.status_code == 403
        south = client.get(url, headers=auth(settings, clinics=("clinic-south",)))
        assert south.status_code == 404 and "<h1>Not found</h1>" in south.text
    missing = client.get("/ui/rescorings/00000000-0000-0000-0000-000000000000",
                         headers=auth(settings))
    malformed = client.get("/ui/rescorings/not-a-run", headers=auth(settings))
    assert (missing.status_code, malformed.status_code) == (404, 404)
    # an episode of the caller's clinic that is not in the run
    outside = episode(services, [("2026-01-05", 20)])
    reply = client.get(f"/ui/rescorings/{run['run_id']}/episodes/{outside}",
                       headers=auth(settings))
    assert reply.status_code == 404


def test_a_run_over_every_clinic_started_from_the_cli_is_404(client, settings, services, run):
    everyone = services.shadow_runs.request(criteria="acnp2006", clinic_id=None,
                                            recorded_by="cli")
    services.shadow_runs.execute(everyone.run_id, workers=1)
    for clinics in (("clinic-north",), ("clinic-north", "clinic-south")):
        reply = client.get(f"/ui/rescorings/{everyone.run_id}",
                           headers=auth(settings, clinics=clinics))
        assert reply.status_code == 404
        reply = client.get(f"/ui/rescorings/{everyone.run_id}/episodes/{run['v1']}",
                           headers=auth(settings, clinics=clinics))
        assert reply.status_code == 404


# -- criteria sets ----------------------------------------------------------------------------

def test_the_criteria_page_lists_every_set_and_version_with_the_domains_hashes(client,
                                                                             settings):
    admin = auth(settings, "admin", sub="admin-1")
    body = {"base": "frank1991", "id": "clinic-north-26w",
            "params": {"recovery_min_days_from_full_onset": 182},
            "source": "Clinic North outcomes policy 2026, section 3"}
    assert client.post("/criteria", json=body, headers=admin).status_code == 201
    body["params"] = {"recovery_min_days_from_full_onset": 200}
    assert client.post("/criteria", json=body, headers=admin).status_code == 201
    versions = client.get("/criteria/clinic-north-26w", headers=admin).json()["versions"]

    page = client.get("/ui/criteria", headers=auth(settings, "clinician", sub="dr-lee"))
    assert page.status_code == 200
    rows = table(page.text, "criteria")
    assert len(rows) == len(BUILTIN) + 2
    for row, criteria in zip(rows, BUILTIN.values(), strict=False):
        assert row[:5] == [criteria.id, criteria.version, criteria.hash[:12], criteria.title,
                           criteria.source]
        assert row[6] == "built in"
        assert f'<code title="{criteria.hash}">{criteria.hash[:12]}</code>' in page.text
    assert "acnp2006" in [row[0] for row in rows]
    custom = rows[len(BUILTIN):]
    for row, version in zip(custom, versions, strict=True):
        definition = version["definition"]
        assert row[:3] == ["clinic-north-26w", definition["version"], definition["hash"][:12]]
        assert re.fullmatch(r"admin-1 at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", row[6])
    assert "Based on frank1991; overridden: recovery_min_days_from_full_onset = 200" in (
        " ".join(custom[1][5].split()))
    assert "<details>" in page.text
    assert '"recovery_min_days_from_full_onset": 200' in page.text  # the full parameters


def test_the_criteria_page_is_for_any_signed_in_role(client, settings):
    for role in ("clinician", "auditor", "researcher", "admin"):
        assert client.get("/ui/criteria", headers=auth(settings, role)).status_code == 200
    reply = client.get("/ui/criteria", follow_redirects=False)  # no token, no session
    assert (reply.status_code, reply.headers["location"]) == (303, "/ui/sign-in")
