"""Criteria sets as versioned data (SPEC §2.2-2.8): ids, versions, content hash, variants."""

from __future__ import annotations

import copy
import re

import pytest

from domain.criteria.builtin import BUILTIN, get_criteria, parse_overrides
from domain.criteria.fold import staged_instrument
from domain.criteria.sets import CriteriaSet
from domain.errors import (
    InvalidCriteriaParameterError,
    UnknownCriteriaError,
    UnstageableInstrumentError,
)

BUILTIN_VERSIONS = {
    "frank1991": ("1.0.0-draft", "frank"),
    "frank1991-rec26w": ("1.0.0-draft", "frank"),
    "acnp2006": ("1.0.0", "acnp"),
    "acnp2006-symptom": ("1.0.0", "acnp"),
    "nhs-talking-therapies-2024": ("1.0.0", "nhstt"),
    "cms159": ("1.0.0", "cms159"),
}
MADRS_THRESHOLDS = {"thresholds.MADRS.remission_below": "10", "thresholds.MADRS.episode_from": "22"}


def test_the_six_builtin_sets_exist_with_their_versions_and_kinds():
    assert {cid: (cs.version, cs.kind) for cid, cs in BUILTIN.items()} == BUILTIN_VERSIONS


@pytest.mark.parametrize("criteria_id", sorted(BUILTIN_VERSIONS))
def test_a_builtin_set_is_found_by_id_and_cites_a_source(criteria_id):
    criteria = get_criteria(criteria_id)
    assert criteria is BUILTIN[criteria_id]
    assert criteria.id == criteria_id
    assert criteria.source
    assert re.fullmatch(r"[0-9a-f]{64}", criteria.hash)
    assert criteria.ref() == {"id": criteria_id, "version": criteria.version,
                              "hash": criteria.hash}


@pytest.mark.parametrize(("criteria_id", "param", "value"), [
    ("frank1991", "full_remission_min_span_days", 14),
    ("frank1991", "partial_remission_min_span_days", 14),
    ("frank1991", "recovery_min_days_from_full_onset", 56),
    ("frank1991-rec26w", "recovery_min_days_from_full_onset", 182),
    ("acnp2006", "remission_min_span_days", 21),
    ("acnp2006", "recovery_min_months_from_remission_onset", 4),
    ("acnp2006", "minimal_status", "score"),
    ("acnp2006-symptom", "minimal_status", "symptom"),
    ("frank1991", "max_gap_days", 28),
    ("acnp2006", "missing_policy", "prorate_le2"),
    ("acnp2006", "rounding", "none"),
    ("nhs-talking-therapies-2024", "caseness", {"PHQ-9": 10, "GAD-7": 8}),
    ("nhs-talking-therapies-2024", "reliable_change", {"PHQ-9": 6, "GAD-7": 4}),
    ("nhs-talking-therapies-2024", "deterioration_rule", "none_improved"),
    ("nhs-talking-therapies-2024", "require_both_measures_paired", True),
    ("cms159", "window_rule", "last"),
    ("cms159", "window_tolerance_days", 60),
    ("cms159", "window_months", 12),
])
def test_builtin_parameters_match_the_spec(criteria_id, param, value):
    assert BUILTIN[criteria_id].params[param] == value


@pytest.mark.parametrize(("instrument", "thresholds"), [
    ("PHQ-9", (5, 10)), ("HAM-D17", (8, 16)), ("QIDS-SR16", (6, 11)), ("MADRS", None),
])
def test_longitudinal_sets_carry_the_c11_zone_thresholds(instrument, thresholds):
    for criteria_id in ("frank1991", "frank1991-rec26w", "acnp2006", "acnp2006-symptom"):
        assert BUILTIN[criteria_id].thresholds(instrument) == thresholds


# --- content hash ----------------------------------------------------------------------------


@pytest.mark.parametrize("criteria_id", sorted(BUILTIN_VERSIONS))
def test_equal_rules_give_an_equal_hash(criteria_id):
    original = BUILTIN[criteria_id]
    reordered = dict(reversed(list(copy.deepcopy(dict(original.params)).items())))
    twin = CriteriaSet(id="twin", version="9.9.9", kind=original.kind, title="another title",
                       source="another source", params=reordered)
    assert original.hash == original.hash
    assert twin.hash == original.hash


def test_the_six_builtin_sets_have_six_different_hashes():
    assert len({cs.hash for cs in BUILTIN.values()}) == 6


def test_a_variant_written_as_an_id_gets_that_id_and_a_different_hash():
    variant = get_criteria("frank1991|rounding=half_up")
    assert variant.id == "frank1991|rounding=half_up"
    assert variant.version == BUILTIN["frank1991"].version
    assert variant.params["rounding"] == "half_up"
    assert variant.hash != BUILTIN["frank1991"].hash


def test_the_same_variant_twice_has_the_same_hash():
    assert (get_criteria("acnp2006|max_gap_days=35").hash
            == get_criteria("acnp2006", {"max_gap_days": 35}).hash)


def test_a_variant_that_equals_another_set_shares_its_hash_but_not_its_id():
    variant = get_criteria("frank1991|recovery_min_days_from_full_onset=182")
    assert variant.hash == BUILTIN["frank1991-rec26w"].hash
    assert variant.id != "frank1991-rec26w"


def test_several_overrides_are_listed_in_key_order_in_the_variant_id():
    variant = get_criteria("frank1991|rounding=half_up, max_gap_days=35")
    assert variant.id == "frank1991|max_gap_days=35,rounding=half_up"
    assert variant.params["max_gap_days"] == 35


@pytest.mark.parametrize(("key", "params"), [
    ("nhs-talking-therapies-2024|require_both_measures_paired=false",
     {"require_both_measures_paired": False}),
    ("nhs-talking-therapies-2024|deterioration_rule=any", {"deterioration_rule": "any"}),
    ("nhs-talking-therapies-2024|caseness.GAD-7=10",
     {"caseness": {"PHQ-9": 10, "GAD-7": 10}}),
    ("cms159|window_rule=any", {"window_rule": "any"}),
    ("frank1991|missing_policy=complete_only", {"missing_policy": "complete_only"}),
    ("frank1991|response_min_fraction=0.6", {"response_min_fraction": "3/5"}),
])
def test_vector_keys_parse_into_variants(key, params):
    variant = get_criteria(key)
    for name, value in params.items():
        assert variant.params[name] == value
    assert variant.hash != BUILTIN[key.partition("|")[0]].hash


def test_with_no_overrides_the_set_itself_is_returned():
    frank = BUILTIN["frank1991"]
    assert frank.with_params({}) is frank
    assert get_criteria("frank1991", {}) is frank


def test_a_variant_leaves_the_builtin_parameters_untouched():
    before = {cid: copy.deepcopy(dict(cs.params)) for cid, cs in BUILTIN.items()}
    hashes = {cid: cs.hash for cid, cs in BUILTIN.items()}
    get_criteria("frank1991", {**MADRS_THRESHOLDS, "thresholds.PHQ-9.remission_below": "4"})
    get_criteria("acnp2006|rounding=floor,max_gap_days=14")
    get_criteria("nhs-talking-therapies-2024|caseness.PHQ-9=12")
    described = BUILTIN["acnp2006"].describe()
    described["params"]["thresholds"]["PHQ-9"]["remission_below"] = 1
    assert {cid: dict(cs.params) for cid, cs in BUILTIN.items()} == before
    assert {cid: cs.hash for cid, cs in BUILTIN.items()} == hashes


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("criteria_id", ["frank", "FRANK1991", "acnp2006-score", "", "nope|x=1"])
def test_an_unknown_criteria_set_is_rejected(criteria_id):
    with pytest.raises(UnknownCriteriaError) as caught:
        get_criteria(criteria_id)
    assert caught.value.field == "criteria"


@pytest.mark.parametrize(("criteria_id", "overrides", "field"), [
    # unknown parameter, also one that belongs to another kind of set
    ("frank1991", {"recovery_weeks": "8"}, "recovery_weeks"),
    ("cms159", {"max_gap_days": "28"}, "max_gap_days"),
    ("acnp2006", {"full_remission_min_span_days": "14"}, "full_remission_min_span_days"),
    ("nhs-talking-therapies-2024", {"caseness.BDI-II": "10"}, "caseness.BDI-II"),
    # bad values
    ("frank1991", {"rounding": "ceil"}, "rounding"),
    ("frank1991", {"missing_policy": "prorate_le3"}, "missing_policy"),
    ("frank1991", {"max_gap_days": "0"}, "max_gap_days"),
    ("frank1991", {"max_gap_days": "four"}, "max_gap_days"),
    ("frank1991", {"max_gap_days": True}, "max_gap_days"),
    ("frank1991", {"max_gap_days": 2.5}, "max_gap_days"),
    ("frank1991", {"response_min_fraction": "3/2"}, "response_min_fraction"),
    ("frank1991", {"response_min_fraction": "0"}, "response_min_fraction"),
    ("acnp2006", {"minimal_status": "items"}, "minimal_status"),
    ("nhs-talking-therapies-2024", {"require_both_measures_paired": "yes"},
     "require_both_measures_paired"),
    ("nhs-talking-therapies-2024", {"deterioration_rule": "all"}, "deterioration_rule"),
    ("cms159", {"window_rule": "first"}, "window_rule"),
    # thresholds: ordering, instrument maximum, both halves required
    ("frank1991", {"thresholds.PHQ-9.remission_below": "12"}, "thresholds.PHQ-9"),
    ("frank1991", {"thresholds.PHQ-9.remission_below": "10"}, "thresholds.PHQ-9"),
    ("acnp2006", {"thresholds.HAM-D17.episode_from": "53"}, "thresholds.HAM-D17"),
    ("frank1991", {"thresholds.MADRS.remission_below": "10"}, "thresholds.MADRS"),
    ("frank1991", {"thresholds.MADRS.remission_below": "30",
                   "thresholds.MADRS.episode_from": "22"}, "thresholds.MADRS"),
])
def test_a_bad_override_is_rejected_naming_the_parameter(criteria_id, overrides, field):
    with pytest.raises(InvalidCriteriaParameterError) as caught:
        get_criteria(criteria_id, overrides)
    assert caught.value.field == field


def test_an_inline_bad_override_is_rejected():
    with pytest.raises(InvalidCriteriaParameterError):
        get_criteria("frank1991|rounding=ceil")


@pytest.mark.parametrize("pair", ["rounding", "=half_up", " =1"])
def test_an_override_without_key_and_value_is_rejected(pair):
    with pytest.raises(InvalidCriteriaParameterError) as caught:
        parse_overrides([pair])
    assert caught.value.field == "param"


def test_overrides_are_parsed_as_key_value_strings():
    assert parse_overrides(["rounding=half_up", " max_gap_days = 35 "]) == {
        "rounding": "half_up", "max_gap_days": "35"}


# --- MADRS becomes stageable with thresholds -------------------------------------------------


@pytest.mark.parametrize("criteria_id", ["frank1991", "acnp2006"])
def test_madrs_is_unstageable_by_default(criteria_id):
    with pytest.raises(UnstageableInstrumentError) as caught:
        staged_instrument(BUILTIN[criteria_id], "MADRS")
    assert caught.value.field == "instrument"


@pytest.mark.parametrize("criteria_id", ["frank1991", "acnp2006"])
def test_dotted_threshold_overrides_make_madrs_stageable(criteria_id):
    variant = get_criteria(criteria_id, MADRS_THRESHOLDS)
    assert variant.thresholds("MADRS") == (10, 22)
    assert variant.thresholds("PHQ-9") == (5, 10)
    assert staged_instrument(variant, "MADRS") == "MADRS"
    assert variant.id == (f"{criteria_id}|thresholds.MADRS.episode_from=22,"
                          "thresholds.MADRS.remission_below=10")
