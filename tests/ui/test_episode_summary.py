"""The episode page's one-line summary (api.ui.episode_summary): its wording for falling,
rising and unchanged scores, a single point and none, and which decision reads "since"."""

from __future__ import annotations

from datetime import date

from api.ui.episode_summary import Decision, Score, day, summary

JAN5 = date(2026, 1, 5)


def scores(*rows: tuple[str, float]) -> list[Score]:
    return [Score(date.fromisoformat(on), total) for on, total in rows]


def test_falling_scores_with_a_response_then_a_partial_remission_since():
    text = summary("PHQ-9", scores(("2026-01-05", 18), ("2026-01-26", 8), ("2026-02-23", 6)), [
        Decision("RemissionReached", date(2026, 2, 9), "partial"),
        Decision("ResponseReached", date(2026, 1, 26))])
    assert text == ("PHQ-9 fell from 18 to 6 over 7 weeks: response on 26 Jan 2026, "
                    "partial remission since 9 Feb 2026")


def test_rising_scores_without_a_decision():
    text = summary("GAD-7", scores(("2026-01-05", 8), ("2026-01-12", 11), ("2026-01-27", 14)), [])
    assert text == "GAD-7 rose from 8 to 14 over 3 weeks: no stage decision yet"


def test_unchanged_scores_round_to_whole_weeks_and_say_one_week():
    text = summary("PHQ-9", scores(("2026-01-05", 12), ("2026-01-13", 12)), [])
    assert text == "PHQ-9 unchanged at 12 over 1 week: no stage decision yet"


def test_under_half_a_week_is_counted_in_days_and_prorated_totals_keep_their_decimals():
    text = summary("PHQ-9", scores(("2026-01-05", 13.5), ("2026-01-08", 9)), [])
    assert text == "PHQ-9 fell from 13.5 to 9 over 3 days: no stage decision yet"


def test_a_single_point_with_a_baseline_below_threshold():
    text = summary("PHQ-9", scores(("2026-01-05", 7)),
                   [Decision("BaselineBelowThreshold", JAN5)])
    assert text == ("PHQ-9 7 on 5 Jan 2026, the only score so far: baseline below threshold "
                    "since 5 Jan 2026")


def test_a_single_point_and_no_points():
    assert summary("PHQ-9", scores(("2026-01-05", 18)), []) == (
        "PHQ-9 18 on 5 Jan 2026, the only score so far: no stage decision yet")
    assert summary("QIDS-SR16", [], []) == "No QIDS-SR16 score recorded yet"


def test_a_safety_flag_is_not_a_stage_and_a_later_response_does_not_outrank_a_remission():
    text = summary("PHQ-9", scores(("2026-01-05", 18), ("2026-03-02", 2)), [
        Decision("SafetyItemPositive", JAN5),
        Decision("ResponseReached", date(2026, 1, 26)),
        Decision("RemissionReached", date(2026, 3, 2), "full")])
    assert text == ("PHQ-9 fell from 18 to 2 over 8 weeks: response on 26 Jan 2026, "
                    "full remission since 2 Mar 2026")
    relapse = summary("PHQ-9", scores(("2026-01-05", 18), ("2026-04-06", 15)), [
        Decision("RemissionReached", date(2026, 3, 2), "full"),
        Decision("RelapseDetected", date(2026, 4, 6))])
    assert relapse.endswith("full remission on 2 Mar 2026, relapse since 6 Apr 2026")


def test_dates_are_english_whatever_the_locale():
    assert [day(date(2026, m, 1)) for m in (1, 5, 12)] == ["1 Jan 2026", "1 May 2026",
                                                           "1 Dec 2026"]
