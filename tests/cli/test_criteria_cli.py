"""Custom criteria sets registered in the store, seen from the command line; MADRS, which has no
default thresholds, and its example trajectory (issue 8)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import assert_nothing_stored, register_criteria
from typer.testing import CliRunner

from bootstrap import Settings
from cli import app
from domain.criteria.builtin import BUILTIN

runner = CliRunner()
EXAMPLES = Path(__file__).parents[2] / "examples"
MADRS_PARAMS = ["--param", "thresholds.MADRS.remission_below=10",
                "--param", "thresholds.MADRS.episode_from=22"]


def _events(output: str) -> list[tuple[str, str, str | None]]:
    return [(e["type"], e["date"], e["degree"]) for e in json.loads(output)]


ACNP = [("ResponseReached", "2026-02-02", None), ("RemissionReached", "2026-03-09", "full"),
        ("RecoveryConfirmed", "2026-06-29", None)]


def test_criteria_list_shows_a_custom_set_registered_in_the_store() -> None:
    custom = register_criteria("clinic-madrs", {"thresholds.MADRS.remission_below": 10,
                                                "thresholds.MADRS.episode_from": 22})
    result = runner.invoke(app, ["criteria", "list", "--json"])
    assert result.exit_code == 0, result.stderr
    listed = json.loads(result.stdout)
    assert [s["id"] for s in listed] == [*BUILTIN, "clinic-madrs"]
    assert listed[-1] == custom
    assert listed[-1]["params"]["thresholds"]["MADRS"] == {"remission_below": 10,
                                                           "episode_from": 22}


def test_criteria_list_does_not_create_a_store() -> None:
    result = runner.invoke(app, ["criteria", "list", "--json"])
    assert result.exit_code == 0, result.stderr
    assert [s["id"] for s in json.loads(result.stdout)] == list(BUILTIN)
    assert_nothing_stored(Settings().sqlite_path.parent)  # not even the folder


def test_evaluate_stages_under_a_custom_set_from_the_store() -> None:
    register_criteria("clinic-madrs", {"thresholds.MADRS.remission_below": 10,
                                       "thresholds.MADRS.episode_from": 22})
    example = str(EXAMPLES / "trajectory-madrs.json")
    custom = runner.invoke(app, ["evaluate", example, "--criteria", "clinic-madrs"])
    with_params = runner.invoke(app, ["evaluate", example, "--criteria", "acnp2006", *MADRS_PARAMS])
    assert custom.exit_code == 0, custom.stderr
    assert _events(custom.stdout) == _events(with_params.stdout) == ACNP


def test_an_unknown_set_names_the_custom_sets_in_the_store() -> None:
    register_criteria("clinic-madrs", {"thresholds.MADRS.remission_below": 10,
                                       "thresholds.MADRS.episode_from": 22})
    result = runner.invoke(app, ["evaluate", str(EXAMPLES / "trajectory-phq9.json"),
                                 "--criteria", "clinic-mdars"])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: criteria: unknown criteria set 'clinic-mdars'; known: "
        f"{', '.join(BUILTIN)}, clinic-madrs\n")


def test_madrs_without_thresholds_names_the_parameters_to_give() -> None:
    result = runner.invoke(app, ["evaluate", str(EXAMPLES / "trajectory-madrs.json"),
                                 "--criteria", "acnp2006"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        "error: document, field instrument: acnp2006 has no thresholds for MADRS; give "
        "thresholds.MADRS.remission_below and thresholds.MADRS.episode_from\n")


@pytest.mark.parametrize("criteria, expected", [
    # 34 at baseline; 16 on 02-02 is the first score at most half of it (response, G6); 9 on
    # 02-16 is the first below 10 (remission onset), confirmed 21 days on (03-09, ACNP 2006);
    # recovery is due 4 months after onset (06-16), first seen at the 06-29 assessment.
    ("acnp2006", ACNP),
    # Frank 1991: partial remission after 14 days below 22 (onset 02-02, on 02-16), full after
    # 14 days below 10 (onset 02-16, on 03-02), recovery 56 days after the onset of full
    # remission (04-13, first seen at the 04-20 assessment).
    ("frank1991", [("ResponseReached", "2026-02-02", None),
                   ("RemissionReached", "2026-02-16", "partial"),
                   ("RemissionReached", "2026-03-02", "full"),
                   ("RecoveryConfirmed", "2026-04-20", None)]),
])
def test_the_madrs_example_stages_with_the_readme_thresholds(
        criteria: str, expected: list[tuple[str, str, str | None]]) -> None:
    result = runner.invoke(app, ["evaluate", str(EXAMPLES / "trajectory-madrs.json"),
                                 "--criteria", criteria, *MADRS_PARAMS])
    assert result.exit_code == 0, result.stderr
    assert _events(result.stdout) == expected
