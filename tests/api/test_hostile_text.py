"""Ids and free text refuse NUL, C0/C1 controls, DEL and bidirectional controls (and ids the
bidirectional marks): 422 problem+json naming the field, nothing written (OWASP API 2023 API8;
"Trojan Source", CVE-2021-42574)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from api_helpers import PROBLEM_TYPE, Api

from api.schemas import hostile_character

# (id, character): one of each kind refused everywhere.
REFUSED = [("nul", "\x00"), ("esc", "\x1b"), ("del", "\x7f"), ("nel-c1", "\x85"),
           ("rlo", "\u202e"), ("lre", "\u202a"), ("rli", "\u2067"), ("pdi", "\u2069")]
MARKS = [("lrm", "\u200e"), ("rlm", "\u200f"), ("alm", "\u061c")]  # refused in ids only


OPENING = {"patient_ref": "P-1", "clinic_id": "clinic-a", "criteria": "acnp2006",
           "opened_on": "2026-01-05"}
ADOPT = {"criteria": "frank1991", "reason": "clinic policy"}
REGISTER = {"base": "frank1991", "id": "clinic-a.strict", "source": "Frank 1991",
            "params": {"rounding": "half_up"}}
# (path, field, a valid body): every body field that is an id or free text.
BODY_FIELDS: list[tuple[str, str, dict[str, Any]]] = [
    ("/episodes", "patient_ref", OPENING),
    ("/episodes", "clinic_id", OPENING),
    ("/episodes", "criteria", OPENING),
    ("/episodes/{episode}/assessments/a-1/void", "reason", {"reason": "typo"}),
    ("/episodes/{episode}/criteria", "criteria", ADOPT),
    ("/episodes/{episode}/criteria", "reason", ADOPT),
    ("/clinics/clinic-a/criteria", "reason", ADOPT),
    ("/rescorings", "clinic_id", {"criteria": "frank1991", "clinic_id": "clinic-a"}),
    ("/rescorings", "criteria", {"criteria": "frank1991"}),
    ("/criteria", "id", REGISTER),
    ("/criteria", "base", REGISTER),
    ("/criteria", "source", REGISTER),
]


@pytest.fixture
def episode(api: Api) -> str:
    episode_id = api.open()
    api.record(episode_id, "2026-01-05", 18, assessment_id="a-1")
    return episode_id


def _assert_refused(response: Any, field: str, char: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM_TYPE
    problem = response.json()
    assert problem["field"] == field
    assert f"U+{ord(char):04X}" in problem["detail"]
    assert char not in response.text


@pytest.mark.parametrize(("path", "field", "body"), BODY_FIELDS,
                         ids=[f"{path.rsplit('/', 1)[-1]}-{field}" for path, field, _ in BODY_FIELDS])
@pytest.mark.parametrize(("name", "char"), REFUSED, ids=[n for n, _ in REFUSED])
def test_body_fields_refuse_control_and_bidi_characters(api: Api, episode: str, path: str,
                                                        field: str, body: dict[str, Any],
                                                        name: str, char: str) -> None:
    before = api.position()
    response = api.client.post(path.format(episode=episode), json={**body, field: f"clinic{char}a"})
    _assert_refused(response, field, char)
    assert api.position() == before


@pytest.mark.parametrize(("name", "char"), MARKS, ids=[n for n, _ in MARKS])
def test_ids_refuse_bidi_marks_which_free_text_keeps(api: Api, episode: str, name: str,
                                                     char: str) -> None:
    opening = {"patient_ref": f"P{char}1", "clinic_id": "clinic-a", "opened_on": "2026-01-05"}
    _assert_refused(api.client.post("/episodes", json=opening), "patient_ref", char)
    response = api.client.post(f"/episodes/{episode}/assessments/a-1/void",
                               json={"reason": f"entered in error {char}(Arabic note)"})
    assert response.status_code == 200, response.text


def test_free_text_keeps_tabs_and_line_breaks_but_not_carriage_returns(api: Api, episode: str) -> None:
    _assert_refused(api.client.post(f"/episodes/{episode}/criteria",
                                    json={"criteria": "frank1991", "reason": "a\r\nb"}),
                    "reason", "\r")
    response = api.client.post(f"/episodes/{episode}/criteria",
                               json={"criteria": "frank1991", "reason": "line one\n\tline two"})
    assert response.status_code == 200, response.text


def test_criteria_parameters_refuse_control_characters(api: Api) -> None:
    response = api.client.post("/episodes", json={
        "patient_ref": "P-1", "clinic_id": "clinic-a", "params": {"rounding": "half\x00up"}})
    assert response.status_code == 422
    refusals = [e for e in response.json()["errors"] if "U+0000" in e["msg"]]
    assert [e["loc"][:3] for e in refusals] == [["body", "params", "rounding"]]


@pytest.mark.parametrize(("name", "char"), REFUSED + MARKS, ids=[n for n, _ in REFUSED + MARKS])
@pytest.mark.parametrize(("method", "template", "field"), [
    ("GET", "/clinics/{}/outcomes", "clinic_id"),
    ("POST", "/clinics/{}/criteria", "clinic_id"),
    ("GET", "/criteria/{}", "criteria_id"),
    ("POST", "/episodes/{episode}/assessments/{}/void", "assessment_id"),
    ("GET", "/episodes?clinic_id={}", "clinic_id"),
    ("GET", "/episodes?patient_ref={}", "patient_ref"),
    ("GET", "/audit?recorded_by={}", "recorded_by"),
], ids=["outcomes-path", "adopt-path", "criteria-path", "void-path", "episodes-clinic-query",
        "episodes-patient-query", "audit-query"])
def test_path_and_query_parameters_refuse_them_too(api: Api, episode: str, method: str,
                                                   template: str, field: str, name: str,
                                                   char: str) -> None:
    url = template.replace("{episode}", episode).format(quote(f"clinic{char}a"))
    before = api.position()
    response = api.client.request(method, url, json={"criteria": "frank1991", "reason": "policy"})
    _assert_refused(response, field, char)
    assert api.position() == before


@pytest.mark.parametrize(("text", "free_text", "expected"), [
    ("clinic-north", False, None), ("Zoë O'Brien-Łukasz 東京", False, None),
    ("a\tb", False, "U+0009"), ("a\tb\nc", True, None), ("a\rb", True, "U+000D"),
    ("\u200f", True, None), ("\u200f", False, "U+200F"), ("x\u2066y", True, "U+2066"),
    ("\x9f", True, "U+009F"), ("\u202b", True, "U+202B"),
], ids=["plain", "letters", "tab-in-id", "layout-in-text", "cr-in-text", "rlm-in-text",
        "rlm-in-id", "lri-in-text", "c1-end", "rle"])
def test_hostile_character_names_the_first_refused_one(text: str, free_text: bool,
                                                       expected: str | None) -> None:
    assert hostile_character(text, free_text=free_text) == expected
