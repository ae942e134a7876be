"""Every error is application/problem+json (RFC 9457) with type, title, status and detail, and
changes nothing in the store; no input ever yields a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import pytest
from api_helpers import PROBLEM_TYPE, Api, memory_settings, running
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

UNKNOWN = str(uuid4())
PHQ9_18 = {"instrument": "PHQ-9", "administered_on": "2026-01-05", "total": 18}


@dataclass
class World:
    """One store shared by the error cases: every case must leave it as it found it."""

    api: Api
    ids: dict[str, str]

    def url(self, template: str) -> str:
        return template.format(**self.ids)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with running(memory_settings()) as client:
        api = Api(client)
        open_id = api.open(clinic_id="clinic-problems")
        api.record(open_id, "2026-01-05", 18, assessment_id="a-1")
        api.record(open_id, "2026-01-12", 16, assessment_id="a-2")
        voided = client.post(f"/episodes/{open_id}/assessments/a-2/void",
                             json={"reason": "entered in error"})
        assert voided.status_code == 200
        closed_id = api.open(clinic_id="clinic-problems")
        api.record(closed_id, "2026-01-05", 18, assessment_id="c-1")
        closed = client.post(f"/episodes/{closed_id}/close", json={"discharged_on": "2026-02-01"})
        assert closed.status_code == 200
        fuzz_id = api.open(clinic_id="clinic-fuzz")
        yield World(api, {"open": open_id, "closed": closed_id, "fuzz": fuzz_id,
                          "unknown": UNKNOWN})


def _case(name: str, status: int, method: str, url: str, body: Any = None, *,
          raw: bytes | None = None, headers: dict[str, str] | None = None,
          code: str | None = None) -> Any:
    return pytest.param(status, method, url, body, raw, headers or {}, code, id=name)


def _phq9(**fields: Any) -> dict[str, Any]:
    return {"instrument": "PHQ-9", "administered_on": "2026-02-02", **fields}


ASSESS = "/episodes/{open}/assessments"
CASES = [
    # 404: unknown episode, by a valid UUID or by anything else.
    _case("unknown-episode-summary", 404, "GET", "/episodes/{unknown}", code="episode-not-found"),
    _case("unknown-episode-record", 404, "POST", "/episodes/{unknown}/assessments", PHQ9_18,
          code="episode-not-found"),
    _case("unknown-episode-stages", 404, "GET", "/episodes/{unknown}/stages"),
    _case("unknown-episode-audit", 404, "GET", "/episodes/{unknown}/audit"),
    _case("unknown-episode-audit-past-a-cursor", 404, "GET", "/episodes/{unknown}/audit?cursor=3"),
    _case("unknown-episode-close", 404, "POST", "/episodes/{unknown}/close",
          {"discharged_on": "2026-02-01"}),
    _case("unknown-episode-void", 404, "POST", "/episodes/{unknown}/assessments/a-1/void",
          {"reason": "typo"}),
    _case("garbage-episode-id", 404, "GET", "/episodes/not-a-uuid", code="episode-not-found"),
    _case("garbage-episode-id-record", 404, "POST", "/episodes/12345/assessments", PHQ9_18),
    _case("unknown-clinic", 404, "GET", "/clinics/nowhere/outcomes"),
    _case("unknown-route", 404, "GET", "/nothing-here"),
    _case("method-not-allowed", 405, "DELETE", "/episodes/{open}"),
    # 422: malformed bodies and values out of the instrument's range.
    _case("malformed-json", 422, "POST", ASSESS, raw=b'{"instrument": "PHQ-9", '),
    _case("body-not-utf8", 422, "POST", ASSESS, raw=b'{"instrument": "\x80"}'),
    _case("not-an-object", 422, "POST", ASSESS, [1, 2, 3]),
    _case("missing-body", 422, "POST", ASSESS),
    _case("extra-field", 422, "POST", ASSESS, _phq9(total=5, mood="sad")),
    _case("extra-field-open", 422, "POST", "/episodes",
          {"patient_ref": "p", "clinic_id": "c", "name": "Jane Doe"}),
    _case("missing-score", 422, "POST", ASSESS, _phq9(), code="missing-score"),
    _case("item-out-of-range", 422, "POST", ASSESS, _phq9(items=[4, 0, 0, 0, 0, 0, 0, 0, 0]),
          code="item-out-of-range"),
    _case("negative-item", 422, "POST", ASSESS, _phq9(items=[0, -1, 0, 0, 0, 0, 0, 0, 0]),
          code="item-out-of-range"),
    _case("total-out-of-range", 422, "POST", ASSESS, _phq9(total=28), code="total-out-of-range"),
    _case("negative-total", 422, "POST", ASSESS, _phq9(total=-1), code="total-out-of-range"),
    _case("wrong-item-count", 422, "POST", ASSESS, _phq9(items=[1] * 8), code="item-count"),
    _case("items-on-total-only-instrument", 422, "POST", ASSESS,
          {"instrument": "HAM-D17", "administered_on": "2026-02-02", "items": [1] * 17},
          code="item-count"),
    _case("boolean-total", 422, "POST", ASSESS, _phq9(total=True)),
    _case("boolean-item", 422, "POST", ASSESS, _phq9(items=[True] + [0] * 8)),
    _case("float-item", 422, "POST", ASSESS, _phq9(items=[1.0] + [0] * 8)),
    _case("float-total", 422, "POST", ASSESS, _phq9(total=5.0)),
    _case("string-total", 422, "POST", ASSESS, _phq9(total="5")),
    _case("naive-datetime", 422, "POST", ASSESS,
          _phq9(administered_on="2026-02-02T09:30:00", total=5), code="naive-datetime"),
    _case("not-a-date", 422, "POST", ASSESS, _phq9(administered_on="2026-02-30", total=5)),
    _case("date-as-number", 422, "POST", ASSESS, _phq9(administered_on=20260202, total=5)),
    _case("future-date", 422, "POST", ASSESS, _phq9(administered_on="2028-01-02", total=5),
          code="future-date"),
    _case("future-datetime", 422, "POST", ASSESS,
          _phq9(administered_on="2028-01-02T00:30:00+14:00", total=5), code="future-date"),
    _case("future-opened-on", 422, "POST", "/episodes",
          {"patient_ref": "p", "clinic_id": "c", "opened_on": "2028-01-02"}, code="future-date"),
    _case("future-discharge", 422, "POST", "/episodes/{open}/close",
          {"discharged_on": "2028-01-02"}, code="future-date"),
    _case("discharge-as-datetime", 422, "POST", "/episodes/{open}/close",
          {"discharged_on": "2026-02-02T10:00:00+00:00"}),
    _case("unknown-instrument", 422, "POST", ASSESS,
          {"instrument": "BDI-II", "administered_on": "2026-02-02", "total": 5},
          code="unknown-instrument"),
    _case("bad-assessment-id", 422, "POST", ASSESS, _phq9(total=5, assessment_id="has space")),
    _case("unknown-criteria", 422, "POST", "/episodes",
          {"patient_ref": "p", "clinic_id": "c", "criteria": "beck1961"}, code="unknown-criteria"),
    _case("unknown-criteria-param", 422, "POST", "/episodes",
          {"patient_ref": "p", "clinic_id": "c", "criteria": "frank1991|bogus=1"},
          code="invalid-criteria-parameter"),
    _case("unknown-criteria-param-override", 422, "POST", "/episodes",
          {"patient_ref": "p", "clinic_id": "c", "params": {"bogus": 1}},
          code="invalid-criteria-parameter"),
    _case("criteria-param-out-of-range", 422, "POST", "/episodes",
          {"patient_ref": "p", "clinic_id": "c", "params": {"max_gap_days": 0}},
          code="invalid-criteria-parameter"),
    _case("unstageable-instrument", 422, "POST", "/episodes",
          {"patient_ref": "p", "clinic_id": "c", "instrument": "BDI-II"}),
    _case("blank-patient-ref", 422, "POST", "/episodes", {"patient_ref": " ", "clinic_id": "c"}),
    _case("empty-void-reason", 422, "POST", "/episodes/{open}/assessments/a-1/void",
          {"reason": ""}),
    _case("bad-if-match", 422, "POST", ASSESS, _phq9(total=5), headers={"If-Match": '"v3"'}),
    _case("huge-if-match", 422, "POST", ASSESS, _phq9(total=5), headers={"If-Match": "9" * 5000}),
    # 409: the episode's state forbids the change.
    _case("closed-episode-record", 409, "POST", "/episodes/{closed}/assessments", PHQ9_18,
          code="episode-closed"),
    _case("closed-episode-void", 409, "POST", "/episodes/{closed}/assessments/c-1/void",
          {"reason": "typo"}, code="episode-closed"),
    _case("closed-episode-close", 409, "POST", "/episodes/{closed}/close",
          {"discharged_on": "2026-02-02"}, code="episode-closed"),
    _case("idempotency-clash", 409, "POST", ASSESS,
          {**PHQ9_18, "assessment_id": "a-1", "total": 17}, code="idempotency-conflict"),
    _case("idempotency-clash-datetime", 409, "POST", ASSESS,
          {**PHQ9_18, "assessment_id": "a-1", "administered_on": "2026-01-05T09:00:00+00:00"},
          code="idempotency-conflict"),
    _case("stale-if-match", 409, "POST", ASSESS, _phq9(total=5), headers={"If-Match": '"1"'},
          code="version-conflict"),
    _case("stale-if-match-void", 409, "POST", "/episodes/{open}/assessments/a-1/void",
          {"reason": "typo"}, headers={"If-Match": "1"}, code="version-conflict"),
    _case("stale-if-match-close", 409, "POST", "/episodes/{open}/close",
          {"discharged_on": "2026-02-02"}, headers={"If-Match": 'W/"2"'}, code="version-conflict"),
    _case("void-unknown-assessment", 404, "POST", "/episodes/{open}/assessments/a-9/void",
          {"reason": "typo"}, code="assessment-not-found"),
    _case("void-twice", 409, "POST", "/episodes/{open}/assessments/a-2/void", {"reason": "again"},
          code="assessment-already-voided"),
    # 422: query parameters.
    _case("limit-0", 422, "GET", "/episodes?limit=0"),
    _case("limit-501", 422, "GET", "/episodes?limit=501"),
    _case("limit-0-audit", 422, "GET", "/audit?limit=0"),
    _case("limit-501-audit", 422, "GET", "/audit?limit=501"),
    _case("limit-501-episode-audit", 422, "GET", "/episodes/{open}/audit?limit=501"),
    _case("limit-not-a-number", 422, "GET", "/episodes?limit=ten"),
    _case("negative-cursor", 422, "GET", "/episodes?cursor=-1"),
    _case("huge-cursor", 422, "GET", "/audit?cursor=99999999999999999999"),
    _case("as-of-naive", 422, "GET", "/episodes/{open}/stages?as_of=2026-03-01T12:00:00"),
    _case("as-of-garbage", 422, "GET", "/episodes/{open}/stages?as_of=yesterday"),
    _case("since-naive", 422, "GET", "/audit?since=2026-03-01T12:00:00"),
    _case("include-retracted-garbage", 422, "GET",
          "/episodes/{open}/stages?include_retracted=maybe"),
]


@pytest.mark.parametrize(("status", "method", "url", "body", "raw", "headers", "code"), CASES)
def test_error_is_a_problem_and_changes_nothing(world, status, method, url, body, raw, headers,
                                                code):
    client = world.api.client
    before = world.api.position()
    if raw is not None:
        headers = {**headers, "Content-Type": "application/json"}

    response = client.request(method, world.url(url), json=body, content=raw, headers=headers)

    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_TYPE)
    problem = response.json()
    assert {"type", "title", "status", "detail"} <= problem.keys()
    assert problem["status"] == status
    assert isinstance(problem["detail"], str) and problem["detail"]
    if code is not None:
        assert problem["type"] == f"/problems/{code}"
    assert world.api.position() == before


def test_validation_problems_never_echo_the_submitted_values(world):
    secret = "Jane-Doe-1970-05-04"

    response = world.api.client.post(world.url(ASSESS), json=_phq9(total=secret, note=secret))

    assert response.status_code == 422
    assert secret not in response.text


def test_a_malformed_date_is_not_quoted_back(world):
    secret = "Jane-Doe-1970-05-04"

    response = world.api.client.post(world.url(ASSESS), json=_phq9(administered_on=secret, total=5))

    assert response.status_code == 422
    assert response.json()["field"] == "administered_on"
    assert secret not in response.text


def test_extreme_but_valid_time_bounds_are_answered(world):
    """Bounds within a day of the calendar's ends are valid aware datetimes: no overflow."""
    for url in ("/episodes/{open}/stages?as_of=0001-01-01T00:00:00%2B14:00",
                "/episodes/{open}/stages?as_of=9999-12-31T23:59:59-12:00",
                "/audit?since=0001-01-01T00:00:00%2B01:00&until=9999-12-31T23:59:59-01:00"):
        response = world.api.client.get(world.url(url))
        assert response.status_code == 200, (url, response.text)


# -- fuzz ----------------------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8),
                                                                        children, max_size=4),
    max_leaves=8)
DATES = st.one_of(
    st.dates().map(lambda d: d.isoformat()),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat()),
    st.sampled_from(["2026-01-05", "2026-01-05T09:30:00+01:00", "2027-12-31", "2028-01-01",
                     "0001-01-01", "9999-12-31T23:59:59-14:00", "", "20260105", "2026-13-01"]),
    JSON)
ITEM = st.one_of(st.integers(-2, 5), st.none(), st.integers(), st.booleans(), st.floats(0, 3),
                 st.text(max_size=2))
ITEMS = st.one_of(st.lists(ITEM, min_size=8, max_size=11), st.lists(ITEM, max_size=20), JSON)
TOTAL = st.one_of(st.integers(-3, 30), st.integers(), st.floats(), st.booleans(), JSON)
FIELDS = {
    "assessment_id": st.one_of(st.sampled_from(["f-1", "f-2", "x" * 65, ""]), st.text(), JSON),
    "instrument": st.one_of(st.sampled_from(["PHQ-9", "GAD-7", "HAM-D17", "MADRS", "QIDS-SR16",
                                             "phq-9", "PHQ-8", ""]), JSON),
    "administered_on": DATES,
    "items": ITEMS,
    "total": TOTAL,
}
BODIES = st.one_of(
    st.fixed_dictionaries({}, optional={**FIELDS, "extra": JSON}),
    st.fixed_dictionaries({"instrument": st.just("PHQ-9"), "administered_on": DATES},
                          optional={"items": ITEMS, "total": TOTAL, "assessment_id": FIELDS[
                              "assessment_id"]}),
    JSON)


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=BODIES)
def test_random_assessment_bodies_never_yield_a_500(world, body):
    response = world.api.client.post(world.url("/episodes/{fuzz}/assessments"),
                                     content=json.dumps(body),
                                     headers={"Content-Type": "application/json"})

    assert response.status_code in (200, 201, 404, 409, 422), response.text
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith(PROBLEM_TYPE)
        assert {"type", "title", "status", "detail"} <= response.json().keys()


@settings(max_examples=80, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(path=st.sampled_from(["/episodes", "/episodes/{fuzz}/close",
                             "/episodes/{fuzz}/assessments/f-1/void"]),
       body=st.one_of(JSON, st.fixed_dictionaries({}, optional={
           "patient_ref": st.one_of(st.text(max_size=130), JSON), "clinic_id": JSON,
           "criteria": st.one_of(st.sampled_from(["acnp2006", "frank1991|rounding=half_up",
                                                  "cms159|window_rule=", "|", "nhs|x=1"]),
                                 st.text(max_size=30)),
           "params": st.one_of(st.dictionaries(st.sampled_from(["rounding", "max_gap_days",
                                                                "thresholds.PHQ-9.remission_below",
                                                                "x"]), JSON), JSON),
           "instrument": st.one_of(st.sampled_from(["PHQ-9", "GAD-7", "HAM-D17"]), JSON),
           "opened_on": DATES, "discharged_on": DATES, "reason": JSON})))
def test_random_bodies_on_the_other_writes_never_yield_a_500(world, path, body):
    response = world.api.client.post(world.url(path), content=json.dumps(body),
                                     headers={"Content-Type": "application/json"})

    assert response.status_code in (200, 201, 404, 409, 422), response.text


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=64))
def test_random_bytes_as_a_body_never_yield_a_500(world, raw):
    response = world.api.client.post(world.url("/episodes/{fuzz}/assessments"), content=raw,
                                     headers={"Content-Type": "application/json"})

    assert response.status_code in (201, 409, 422), response.text


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=st.dictionaries(st.sampled_from(["as_of", "include_retracted", "since", "until",
                                               "limit", "cursor", "clinic_id", "stage"]),
                              st.one_of(st.text(max_size=30), DATES.filter(
                                  lambda d: isinstance(d, str)),
                                  st.integers().map(str)), max_size=4),
       path=st.sampled_from(["/episodes/{fuzz}/stages", "/audit", "/episodes",
                             "/episodes/{fuzz}/audit"]))
def test_random_query_parameters_never_yield_a_500(world, params, path):
    response = world.api.client.get(world.url(path), params=params)

    assert response.status_code in (200, 404, 422), response.text
