"""Staging rules the public vectors do not cover: C4, C6, C7, C10, C11/C12, G2, G3 (SPEC §2.1, §2.8).

Every expectation below is worked out by hand from the SPEC; the comment above each trajectory
shows the arithmetic. Events are written as the specification's vector checker writes them:
``Type@date[degree] onset date``.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest

from domain.criteria.builtin import BUILTIN, get_criteria
from domain.criteria.fold import Observation, add_months, fold
from domain.errors import UnknownInstrumentError, UnstageableInstrumentError
from domain.trajectory import TrajectoryError, evaluate, parse_trajectory


def obs(on: str, total: int | None = None, *, items: list[int | None] | None = None,
        instrument: str = "PHQ-9", recorded_at: str | None = None,
        id: str | None = None) -> Observation:
    return Observation(
        assessment_id=id or f"{instrument}@{on}", instrument=instrument,
        on=date.fromisoformat(on), items=tuple(items) if items is not None else None,
        total=total, recorded_at=datetime.fromisoformat(recorded_at) if recorded_at else None)


def series(*pairs: tuple[str, int], instrument: str = "PHQ-9") -> list[Observation]:
    """Total-only observations from ("2026-01-05", 18) pairs (dates without the year are 2026)."""
    return [obs(on if len(on) == 10 else f"2026-{on}", total, instrument=instrument)
            for on, total in pairs]


def stages(observations: list[Observation], criteria: Any, instrument: str = "PHQ-9") -> list[str]:
    if isinstance(criteria, str):
        criteria = get_criteria(criteria)
    result = fold(observations, criteria, instrument=instrument)
    out = []
    for e in result.events:
        text = f"{e.type}@{e.date}"
        if e.degree:
            text += f"[{e.degree}]"
        if e.onset:
            text += f" onset {e.onset}"
        out.append(text)
    return out


# --- C10: after a recurrence a new episode starts, with its own baseline and response --------

# frank1991: baseline 20; 01-19 = 4 -> response (2*16 >= 20), full run starts; 02-02 span 14 ->
# full remission (onset 01-19; full wins over partial on the same day); recovery due 01-19 + 56
# = 03-16 -> recovery; 03-30 = 18 -> recurrence, new baseline 18. 04-13 = 10: 2*8 = 16 < 18, no
# response (against the old baseline 20 it would be one: 2*10 >= 20); 04-27 = 9: 2*9 >= 18.
FRANK_RECURRENCE = series(("01-05", 20), ("01-19", 4), ("02-02", 4), ("02-16", 3),
                          ("03-02", 3), ("03-16", 3), ("03-30", 18), ("04-13", 10),
                          ("04-27", 9))


def test_frank_a_second_response_follows_a_recurrence_measured_from_the_new_baseline():
    assert stages(FRANK_RECURRENCE, "frank1991") == [
        "ResponseReached@2026-01-19",
        "RemissionReached@2026-02-02[full] onset 2026-01-19",
        "RecoveryConfirmed@2026-03-16",
        "RecurrenceDetected@2026-03-30",
        "ResponseReached@2026-04-27",
    ]


def test_frank_the_new_episode_reaches_remission_again():
    more = FRANK_RECURRENCE + series(("05-11", 4), ("05-25", 3))
    # partial run (< 10) from 04-27: 05-11 span 14 -> but the full run from 05-11 is only 0 d;
    # 05-25: full run 05-11..05-25 span 14 -> full remission (state was partial)
    assert stages(more, "frank1991")[-2:] == [
        "RemissionReached@2026-05-11[partial] onset 2026-04-27",
        "RemissionReached@2026-05-25[full] onset 2026-05-11",
    ]


# acnp2006: baseline 20; 01-12 = 4 -> response; minimal run from 01-12 spans 21 d on 02-02 ->
# remission (onset 01-12); recovery due 01-12 + 4 months = 05-12; 05-11 is a day early;
# 05-12 -> recovery; 05-26 = 18 -> recurrence; 06-09 = 10: 2*8 < 18; 06-23 = 9: 2*9 >= 18.
ACNP_RECURRENCE = series(("01-05", 20), ("01-12", 4), ("01-19", 4), ("01-26", 4),
                         ("02-02", 4), ("03-02", 4), ("03-30", 4), ("04-27", 4), ("05-11", 4),
                         ("05-12", 4), ("05-26", 18), ("06-09", 10), ("06-23", 9))


def test_acnp_a_second_response_follows_a_recurrence_measured_from_the_new_baseline():
    assert stages(ACNP_RECURRENCE, "acnp2006") == [
        "ResponseReached@2026-01-12",
        "RemissionReached@2026-02-02[full] onset 2026-01-12",
        "RecoveryConfirmed@2026-05-12",
        "RecurrenceDetected@2026-05-26",
        "ResponseReached@2026-06-23",
    ]


def test_acnp_recovery_is_due_four_calendar_months_after_remission_onset():
    recovery = [e for e in fold(ACNP_RECURRENCE, BUILTIN["acnp2006"]).events
                if e.type == "RecoveryConfirmed"]
    assert [(e.date, e.due_date) for e in recovery] == [(date(2026, 5, 12), date(2026, 5, 12))]


def test_a_relapse_does_not_start_a_new_episode_so_no_second_response():
    # frank: baseline 20, 01-19 = 8 -> response and partial run; 02-02 = 8 -> partial remission
    # (onset 01-19); 02-16 = 12 -> relapse; 03-02 = 4 would be a response from a baseline of 12
    # (2*8 >= 12) but a relapse keeps the episode, which already responded.
    trajectory = series(("01-05", 20), ("01-19", 8), ("02-02", 8), ("02-16", 12), ("03-02", 4))
    assert stages(trajectory, "frank1991") == [
        "ResponseReached@2026-01-19",
        "RemissionReached@2026-02-02[partial] onset 2026-01-19",
        "RelapseDetected@2026-02-16",
    ]


# --- C11/C12: HAM-D17 and QIDS-SR16 zones ----------------------------------------------------


@pytest.mark.parametrize(("instrument", "below_guard", "at_guard"), [
    ("HAM-D17", 15, 16),
    ("QIDS-SR16", 10, 11),
])
@pytest.mark.parametrize("criteria_id", ["frank1991", "acnp2006"])
def test_baseline_guard_uses_the_staged_instruments_episode_threshold(
        criteria_id, instrument, below_guard, at_guard):
    below = series(("01-05", below_guard), ("01-19", 2), ("02-02", 2), ("02-16", 2),
                   instrument=instrument)
    assert stages(below, criteria_id, instrument) == ["BaselineBelowThreshold@2026-01-05"]
    at = series(("01-05", at_guard), ("01-19", 2), ("02-02", 2), ("02-16", 2),
                instrument=instrument)
    assert "BaselineBelowThreshold@2026-01-05" not in stages(at, criteria_id, instrument)
    assert "ResponseReached@2026-01-19" in stages(at, criteria_id, instrument)


# HAM-D17 under frank1991: baseline 24; 01-19 = 12 -> response (2*12 >= 24), partial run (< 16)
# starts; 02-02 = 10 -> partial span 14 -> partial remission (onset 01-19); 02-16 = 7 full run
# starts (< 8); 03-02 = 6 -> full span 14 -> full remission (onset 02-16); 03-16 = 15 -> still
# below 16, so a downgrade to partial, not a relapse (onset: partial run start 01-19);
# 03-30 = 16 -> relapse.
HAMD_FRANK = series(("01-05", 24), ("01-19", 12), ("02-02", 10), ("02-16", 7), ("03-02", 6),
                    ("03-16", 15), ("03-30", 16), instrument="HAM-D17")


def test_hamd17_frank_zones_are_le7_full_8_to_15_partial_ge16_episode():
    assert stages(HAMD_FRANK, "frank1991", "HAM-D17") == [
        "ResponseReached@2026-01-19",
        "RemissionReached@2026-02-02[partial] onset 2026-01-19",
        "RemissionReached@2026-03-02[full] onset 2026-02-16",
        "RemissionReached@2026-03-16[partial] onset 2026-01-19",
        "RelapseDetected@2026-03-30",
    ]


@pytest.mark.parametrize(("instrument", "minimal", "not_minimal"), [
    ("HAM-D17", 7, 8),
    ("QIDS-SR16", 5, 6),
    ("PHQ-9", 4, 5),
])
def test_acnp_minimal_zone_per_instrument(instrument, minimal, not_minimal):
    # baseline 20 (above every guard); weekly scores at the boundary for 21 days
    def weekly(value: int) -> list[Observation]:
        return series(("01-05", 20), ("01-12", value), ("01-19", value), ("01-26", value),
                      ("02-02", value), instrument=instrument)

    assert stages(weekly(minimal), "acnp2006", instrument) == [
        "ResponseReached@2026-01-12",
        "RemissionReached@2026-02-02[full] onset 2026-01-12",
    ]
    assert stages(weekly(not_minimal), "acnp2006", instrument) == ["ResponseReached@2026-01-12"]


# QIDS-SR16 under frank1991: baseline 14; 01-12 = 7 -> response (2*7 >= 14), partial run (< 11);
# 01-19 = 5 full run (< 6) starts; 01-26: partial span 14 -> partial remission (onset 01-12);
# 02-02: full span 14 -> full remission (onset 01-19); 02-09 = 10 -> downgrade (onset 01-12);
# 02-16 = 11 -> relapse.
QIDS_FRANK = series(("01-05", 14), ("01-12", 7), ("01-19", 5), ("01-26", 5), ("02-02", 5),
                    ("02-09", 10), ("02-16", 11), instrument="QIDS-SR16")


def test_qids_frank_zones_are_le5_full_6_to_10_partial_ge11_episode():
    assert stages(QIDS_FRANK, "frank1991", "QIDS-SR16") == [
        "ResponseReached@2026-01-12",
        "RemissionReached@2026-01-26[partial] onset 2026-01-12",
        "RemissionReached@2026-02-02[full] onset 2026-01-19",
        "RemissionReached@2026-02-09[partial] onset 2026-01-12",
        "RelapseDetected@2026-02-16",
    ]


def test_only_rows_of_the_staged_instrument_are_folded():
    # PHQ-9 rows that would be a remission on their own are ignored for a HAM-D17 trajectory
    mixed = HAMD_FRANK + series(("01-06", 20), ("01-13", 2), ("01-20", 2), ("01-27", 2),
                                ("02-03", 2))
    assert stages(mixed, "frank1991", "HAM-D17") == stages(HAMD_FRANK, "frank1991", "HAM-D17")


def test_a_gad7_trajectory_stages_its_phq9_rows():
    phq = series(("01-05", 18), ("01-19", 8), ("02-02", 4), ("02-16", 3))
    gad = series(("01-05", 15), ("01-19", 2), ("02-02", 2), ("02-16", 2), instrument="GAD-7")
    assert stages(phq + gad, "frank1991", "GAD-7") == stages(phq, "frank1991", "PHQ-9")
    assert stages(phq + gad, "frank1991", "GAD-7") == [
        "ResponseReached@2026-01-19",
        "RemissionReached@2026-02-02[partial] onset 2026-01-19",
        "RemissionReached@2026-02-16[full] onset 2026-02-02",
    ]


# --- MADRS: no thresholds by default, stageable once they are given ---------------------------


@pytest.mark.parametrize("criteria_id", ["frank1991", "frank1991-rec26w", "acnp2006"])
def test_madrs_without_thresholds_is_unstageable(criteria_id):
    with pytest.raises(UnstageableInstrumentError):
        fold(series(("01-05", 30), instrument="MADRS"), BUILTIN[criteria_id], instrument="MADRS")


def test_madrs_with_thresholds_is_staged_on_them():
    criteria = get_criteria("frank1991", {"thresholds.MADRS.remission_below": "10",
                                          "thresholds.MADRS.episode_from": "22"})
    # baseline 30; 01-19 = 15 -> response (2*15 >= 30), partial run (< 22); 02-02 = 9 -> partial
    # span 14 -> partial remission (onset 01-19), full run (< 10) starts; 02-16 = 9 -> full.
    madrs = series(("01-05", 30), ("01-19", 15), ("02-02", 9), ("02-16", 9), ("03-02", 22),
                   instrument="MADRS")
    assert stages(madrs, criteria, "MADRS") == [
        "ResponseReached@2026-01-19",
        "RemissionReached@2026-02-02[partial] onset 2026-01-19",
        "RemissionReached@2026-02-16[full] onset 2026-02-02",
        "RelapseDetected@2026-03-02",
    ]
    # and the MADRS baseline guard is the episode threshold: 21 is below it
    low = series(("01-05", 21), ("01-19", 5), instrument="MADRS")
    assert stages(low, criteria, "MADRS") == ["BaselineBelowThreshold@2026-01-05"]


@pytest.mark.parametrize("instrument", ["HAM-D17", "QIDS-SR16", "MADRS"])
def test_acnp_symptom_rule_needs_phq9_items(instrument):
    with pytest.raises(UnstageableInstrumentError):
        fold(series(("01-05", 20), instrument=instrument), BUILTIN["acnp2006-symptom"],
             instrument=instrument)


def test_an_unknown_trajectory_instrument_is_rejected():
    with pytest.raises(UnknownInstrumentError):
        fold([], BUILTIN["frank1991"], instrument="BDI-II")


def test_total_only_instrument_rows_with_items_are_rejected_naming_the_row():
    doc = {"instrument": "HAM-D17", "assessments": [
        {"date": "2026-01-05", "total": 20},
        {"date": "2026-01-19", "items": [1] * 17},
    ]}
    with pytest.raises(TrajectoryError) as caught:
        evaluate(parse_trajectory(doc), BUILTIN["frank1991"])
    assert (caught.value.row, caught.value.field) == (2, "items")


def test_total_only_instrument_rows_out_of_range_are_rejected_naming_the_row():
    doc = {"instrument": "QIDS-SR16", "assessments": [{"date": "2026-01-05", "total": 28}]}
    with pytest.raises(TrajectoryError) as caught:
        evaluate(parse_trajectory(doc), BUILTIN["acnp2006"])
    assert (caught.value.row, caught.value.field) == (1, "total")


# --- G2: same instrument, same day -> the latest recorded_at wins ----------------------------

# Baseline 16. On 01-19 a score of 12 (no response: 2*4 < 16) is amended later the same day to
# 7 (response: 2*9 >= 16).
FIRST = obs("2026-01-19", 12, recorded_at="2026-01-19T10:00:00+00:00", id="first")
AMENDED = obs("2026-01-19", 7, recorded_at="2026-01-19T16:30:00+00:00", id="amended")
BASELINE_16 = obs("2026-01-05", 16, recorded_at="2026-01-05T10:00:00+00:00", id="baseline")


@pytest.mark.parametrize("rows", [
    [BASELINE_16, FIRST, AMENDED],
    [AMENDED, FIRST, BASELINE_16],
])
def test_a_same_day_amendment_replaces_the_earlier_record(rows):
    result = fold(rows, BUILTIN["frank1991"])
    assert [(e.type, e.assessment_id) for e in result.events] == [("ResponseReached", "amended")]


def test_the_superseded_record_is_still_scored_but_not_staged():
    result = fold([BASELINE_16, AMENDED, FIRST], BUILTIN["frank1991"])
    assert result.scores["first"].value == 12
    assert result.scores["amended"].value == 7


def test_recorded_at_is_compared_as_an_instant_not_as_local_time():
    # 23:00 at UTC-5 is 04:00 UTC the next day: later than 01:00 UTC, though "earlier" on a clock
    late = obs("2026-01-19", 7, recorded_at="2026-01-19T23:00:00-05:00", id="late")
    early = obs("2026-01-19", 12, recorded_at="2026-01-20T01:00:00+00:00", id="early")
    result = fold([BASELINE_16, late, early], BUILTIN["frank1991"])
    assert [(e.type, e.assessment_id) for e in result.events] == [("ResponseReached", "late")]


def test_a_same_day_score_of_another_instrument_is_not_an_amendment():
    gad = obs("2026-01-19", 12, instrument="GAD-7",
              recorded_at="2026-01-19T18:00:00+00:00", id="gad")
    result = fold([BASELINE_16, FIRST, gad], BUILTIN["frank1991"])
    assert result.events == ()
    assert [e.assessment_id for e in fold([BASELINE_16, FIRST, AMENDED, gad],
                                          BUILTIN["frank1991"]).events] == ["amended"]


# --- G3: calendar months clamp to the month's end --------------------------------------------


@pytest.mark.parametrize(("start", "months", "expected"), [
    ("2026-01-31", 1, "2026-02-28"),
    ("2024-01-31", 1, "2024-02-29"),
    ("2026-10-31", 4, "2027-02-28"),
    ("2026-03-31", 1, "2026-04-30"),
    ("2026-11-30", 1, "2026-12-30"),
    ("2026-12-15", 1, "2027-01-15"),
    ("2026-02-09", 4, "2026-06-09"),
    ("2026-01-05", 12, "2027-01-05"),
])
def test_add_months(start, months, expected):
    assert add_months(date.fromisoformat(start), months) == date.fromisoformat(expected)


def test_acnp_recovery_due_date_is_clamped_to_the_end_of_february():
    # remission onset 2025-10-31 (run 10-31..11-21 = 21 d); due 2025-10-31 + 4 months =
    # 2026-02-28 (no 31 February); 02-27 is a day early, 02-28 confirms recovery.
    trajectory = series(("2025-10-24", 16), ("2025-10-31", 4), ("2025-11-07", 4),
                        ("2025-11-14", 4), ("2025-11-21", 4), ("2025-12-19", 4),
                        ("2026-01-16", 4), ("2026-02-13", 4), ("2026-02-27", 4),
                        ("2026-02-28", 4))
    recovery = [e for e in fold(trajectory, BUILTIN["acnp2006"]).events
                if e.type == "RecoveryConfirmed"]
    assert [(e.date, e.due_date) for e in recovery] == [(date(2026, 2, 28), date(2026, 2, 28))]


def test_acnp_recovery_counts_calendar_months_not_a_fixed_number_of_days():
    # remission onset 06-01 (run 06-01..06-22 = 21 d); due 06-01 + 4 months = 10-01, whereas
    # 06-01 + 120 days = 09-29 (the vectors' Feb-Jun onsets cannot tell the two apart);
    # 09-30 is therefore still in remission and 10-01 confirms recovery.
    trajectory = series(("05-25", 16), ("06-01", 4), ("06-08", 4), ("06-15", 4), ("06-22", 4),
                        ("07-20", 4), ("08-17", 4), ("09-14", 4), ("09-30", 4), ("10-01", 4))
    recovery = [e for e in fold(trajectory, BUILTIN["acnp2006"]).events
                if e.type == "RecoveryConfirmed"]
    assert [(e.date, e.due_date) for e in recovery] == [(date(2026, 10, 1), date(2026, 10, 1))]


@pytest.mark.parametrize(("criteria_id", "early", "due"), [
    # full remission 01-26 (onset 01-12); 01-12 + 56 d = 03-09, + 182 d = 07-13
    ("frank1991", "2026-03-08", "2026-03-09"),
    ("frank1991-rec26w", "2026-07-12", "2026-07-13"),
])
def test_frank_recovery_is_due_exactly_n_days_after_full_remission_onset(criteria_id, early, due):
    trajectory = series(("01-05", 16), ("01-12", 4), ("01-19", 4), ("01-26", 4))
    day = date(2026, 1, 26)
    while day < date.fromisoformat(early) - timedelta(days=21):  # every 3 weeks, all below 5
        day += timedelta(days=21)
        trajectory.append(obs(day.isoformat(), 3))
    trajectory += [obs(early, 3), obs(due, 3)]
    recovery = [e for e in fold(trajectory, BUILTIN[criteria_id]).events
                if e.type == "RecoveryConfirmed"]
    assert [(str(e.date), str(e.due_date)) for e in recovery] == [(due, due)]


# --- C6: a gap longer than max_gap_days resets runs, not an ascribed remission ---------------

# Baseline 16; 01-12 = 4 (response); the next 4 is 35 days later (> 28), so the run restarts
# there with span 0; with max_gap_days = 35 the run 01-12..02-16 spans 35 d >= 14.
GAPPED = series(("01-05", 16), ("01-12", 4), ("02-16", 4))


def test_a_gap_longer_than_max_gap_days_breaks_a_run():
    assert stages(GAPPED, "frank1991") == ["ResponseReached@2026-01-12"]


def test_a_gap_within_max_gap_days_keeps_the_run():
    assert stages(GAPPED, "frank1991|max_gap_days=35") == [
        "ResponseReached@2026-01-12",
        "RemissionReached@2026-02-16[full] onset 2026-01-12",
    ]


def test_a_gap_of_exactly_max_gap_days_keeps_the_run():
    trajectory = series(("01-05", 16), ("01-12", 4), ("02-09", 4))  # 28 days
    assert stages(trajectory, "frank1991")[-1] == "RemissionReached@2026-02-09[full] onset 2026-01-12"


def test_frank_a_gap_does_not_end_full_remission_so_recovery_follows():
    # full remission 01-26 (run 01-12..01-26, onset 01-12); next score 03-09 after 42 days:
    # runs reset, but 03-09 - 01-12 = 56 days in full remission -> recovery.
    trajectory = series(("01-05", 16), ("01-12", 4), ("01-19", 4), ("01-26", 4), ("03-09", 3))
    assert stages(trajectory, "frank1991") == [
        "ResponseReached@2026-01-12",
        "RemissionReached@2026-01-26[full] onset 2026-01-12",
        "RecoveryConfirmed@2026-03-09",
    ]


def test_acnp_a_gap_does_not_end_remission_so_recovery_follows():
    # remission 02-02 (onset 01-12); gaps of 42 and 57 days follow; 01-12 + 4 months = 05-12.
    trajectory = series(("01-05", 16), ("01-12", 4), ("01-19", 4), ("01-26", 4), ("02-02", 4),
                        ("03-16", 7), ("05-12", 3))
    assert stages(trajectory, "acnp2006") == [
        "ResponseReached@2026-01-12",
        "RemissionReached@2026-02-02[full] onset 2026-01-12",
        "RecoveryConfirmed@2026-05-12",
    ]


# --- C7: acnp2006-symptom -------------------------------------------------------------------

ZEROS = [0] * 9


def symptom_course(*items: list[int | None]) -> list[Observation]:
    """Baseline total 15 on 01-05, then one item set a week from 01-12 (four weeks = 21 days)."""
    days = ["2026-01-12", "2026-01-19", "2026-01-26", "2026-02-02"]
    return [obs("2026-01-05", 15)] + [obs(day, items=list(row)) for day, row in zip(days, items,
                                                                                    strict=True)]


def remission_under_symptom_rule(course: list[Observation]) -> bool:
    return any(e.type == "RemissionReached"
               for e in fold(course, BUILTIN["acnp2006-symptom"]).events)


def test_symptom_rule_totals_without_items_are_never_minimal():
    totals = series(("01-05", 15), ("01-12", 2), ("01-19", 2), ("01-26", 2), ("02-02", 2))
    assert stages(totals, "acnp2006") == [
        "ResponseReached@2026-01-12", "RemissionReached@2026-02-02[full] onset 2026-01-12"]
    assert stages(totals, "acnp2006-symptom") == ["ResponseReached@2026-01-12"]


@pytest.mark.parametrize(("row", "minimal"), [
    (ZEROS, True),
    ([1, 1, 1, 1, 1, 1, 1, 1, 0], True),            # total 8: no item at 2+
    ([2, 0, 0, 0, 0, 0, 0, 0, 0], False),           # depressed mood / anhedonia present
    ([0, 2, 0, 0, 0, 0, 0, 0, 0], False),
    ([None, 0, 0, 0, 0, 0, 0, 0, 0], False),        # C7: item 1 missing -> not minimal
    ([0, None, 0, 0, 0, 0, 0, 0, 0], False),        # C7: item 2 missing -> not minimal
    ([1, 1, None, None, 0, 0, 0, 0, 0], True),      # C7: missing items 3-9 are not present
    ([0, 0, 2, 2, 0, 0, 0, 0, 0], True),            # two others present: < 3
    ([0, 0, 2, 2, 2, 0, 0, 0, 0], False),           # three others present
    ([0, 0, 2, 2, 0, 0, 0, 0, 1], False),           # item 9 counts at 1
    ([0, 0, 2, 1, 1, 1, 1, 1, 1], True),            # item 9 = 1 plus one other
])
def test_symptom_rule_minimal_status(row, minimal):
    assert remission_under_symptom_rule(symptom_course(row, row, row, row)) is minimal


def test_symptom_rule_remission_needs_21_days_of_minimal_status():
    bad = [2, 2, 0, 0, 0, 0, 0, 0, 0]  # total 4: minimal by score, not by symptoms
    course = symptom_course(bad, ZEROS, ZEROS, ZEROS)
    assert stages(course, "acnp2006") == [
        "ResponseReached@2026-01-12", "RemissionReached@2026-02-02[full] onset 2026-01-12"]
    assert stages(course, "acnp2006-symptom") == ["ResponseReached@2026-01-12"]


# --- C4: safety flags under every set --------------------------------------------------------


@pytest.mark.parametrize("criteria_id", sorted(BUILTIN))
def test_item9_is_reported_after_a_baseline_below_threshold_and_when_unscorable(criteria_id):
    trajectory = [
        obs("2026-01-05", 6),
        obs("2026-01-19", items=[1, 1, 1, 1, 1, 0, 0, 0, 1]),           # total 6, item 9 = 1
        obs("2026-02-02", items=[None, None, None, 0, 0, 0, 0, 0, 2]),  # unscorable, item 9 = 2
    ]
    result = fold(trajectory, BUILTIN[criteria_id])
    safety = [(e.date.isoformat(), e.evidence["item9"]) for e in result.events
              if e.type == "SafetyItemPositive"]
    assert safety == [("2026-01-19", 1), ("2026-02-02", 2)]
    if BUILTIN[criteria_id].longitudinal:
        assert [e.type for e in result.events] == [
            "BaselineBelowThreshold", "SafetyItemPositive", "SafetyItemPositive"]


def test_item9_is_reported_from_phq9_rows_whatever_instrument_is_staged():
    hamd = series(("01-05", 20), ("01-19", 18), instrument="HAM-D17")
    trajectory = [*hamd, obs("2026-01-12", items=[0, 0, 0, 0, 0, 0, 0, 0, 3])]
    assert stages(trajectory, "frank1991", "HAM-D17") == ["SafetyItemPositive@2026-01-12"]


# --- G1: clinical date, not arrival order, orders the timeline -------------------------------


def test_rows_are_folded_in_clinical_date_order():
    ordered = series(("01-05", 18), ("01-19", 8), ("02-02", 4), ("02-16", 3))
    assert stages(list(reversed(ordered)), "frank1991") == stages(ordered, "frank1991")
    assert stages(ordered, "frank1991")[0] == "ResponseReached@2026-01-19"
