"""Rule packs as versioned data: the built-ins, their hashes, describe round trip, variants and
bad parameters (the field named)."""

from __future__ import annotations

import hashlib
import json

import pytest

from domain.errors import InvalidRulePackParameterError, UnknownRulePackError
from domain.signals.packs import BUILTIN_PACKS, RulePack, baseline_band, get_rule_pack

BUILTINS = {
    "schueller2015-phq9": ("cut_points", "Schueller SM"),
    "stard-qids": ("cut_points", "Trivedi MH"),
    "expected-recovery": ("expected_recovery", "Finch AE, Lambert MJ, Schaalje BG"),
    "phq9-item9": ("safety_item", "Kroenke"),
    "overdue": ("overdue", "Outcome Ledger"),
}
# Published packs never change (a new definition is a new version, ADR 0030): signals and alerts
# already stored carry these hashes.
HASHES = {
    "schueller2015-phq9": "bfcda41fe9f21d6c3bdc6070c8fe5901471ccdb8508f8cf83f959cfb40c36a86",
    "stard-qids": "e28123bf59f10a90c1cd3fc02c49d52406a7b276cd5a82ba0fe80e12fc1d5ae2",
    "expected-recovery": "e0c575218f3afb42ffce5572e00bccdb6d6f7718a8b758e5225e6c6ba553d34b",
    "phq9-item9": "658695a39a7a58ae6a5923e18e4af488b3640fae050fb2ee02caa3035aff936f",
    "overdue": "a1e896a98e5bdbffb9a301616864b0bf39c9f9689533dc790e9022a161634c5e",
}


def test_the_five_builtins_with_version_kind_and_source():
    assert set(BUILTIN_PACKS) == set(BUILTINS)
    for pack_id, (kind, author) in BUILTINS.items():
        pack = get_rule_pack(pack_id)
        assert (pack.id, pack.version, pack.kind) == (pack_id, "1.0.0", kind)
        assert author in pack.source


def test_builtin_parameters():
    assert get_rule_pack("schueller2015-phq9").params == {
        "instrument": "PHQ-9", "tolerance_days": 7, "thresholds": {"4": 17, "9": 13, "14": 9}}
    stard = get_rule_pack("stard-qids").params
    assert (stard["instrument"], stard["tolerance_days"], stard["thresholds"]) == (
        "QIDS-SR16", 3, {"4": 9, "6": 9, "9": 9, "12": 9})
    er = get_rule_pack("expected-recovery").params
    assert (er["probability"], er["min_episodes"], er["earliest_week"]) == ("0.8", 30, 3)
    assert [b["lower"] for b in er["bands"]["HAM-D17"]] == [0, 8, 17, 24]
    assert get_rule_pack("overdue").params == {"overdue_days": 28}
    assert get_rule_pack("phq9-item9").params == {"instrument": "PHQ-9", "item": 9,
                                                   "positive_from": 1}


@pytest.mark.parametrize("pack_id", sorted(BUILTINS))
def test_hash_is_sha256_of_canonical_kind_and_params(pack_id):
    pack = get_rule_pack(pack_id)
    doc = json.dumps({"kind": pack.kind, "params": pack.params}, sort_keys=True,
                     separators=(",", ":"))
    assert pack.hash == hashlib.sha256(doc.encode()).hexdigest()
    assert pack.ref() == {"id": pack_id, "version": "1.0.0", "hash": pack.hash}
    assert pack.hash == HASHES[pack_id]


@pytest.mark.parametrize("pack_id", sorted(BUILTINS))
def test_describe_round_trips_through_json(pack_id):
    pack = get_rule_pack(pack_id)
    described = json.loads(json.dumps(pack.describe()))
    assert described == {**pack.ref(), "kind": pack.kind, "title": pack.title,
                         "source": pack.source, "params": json.loads(json.dumps(pack.params))}
    again = RulePack.from_description(described)
    assert again == pack and again.hash == pack.hash


def test_a_description_of_an_unknown_kind_is_refused():
    described = {**get_rule_pack("overdue").describe(), "kind": "horoscope"}
    with pytest.raises(InvalidRulePackParameterError) as caught:
        RulePack.from_description(described)
    assert caught.value.field == "kind"


def test_unknown_pack():
    with pytest.raises(UnknownRulePackError) as caught:
        get_rule_pack("oq45-lambert")
    assert caught.value.field == "rule"
    assert caught.value.code == "unknown-rule-pack"


def test_overdue_variant():
    variant = get_rule_pack("overdue").with_params({"overdue_days": "21"})
    assert (variant.id, variant.version, variant.params) == (
        "overdue|overdue_days=21", "1.0.0", {"overdue_days": 21})
    assert variant.hash != HASHES["overdue"]
    assert get_rule_pack("overdue|overdue_days=21") == variant
    assert get_rule_pack("overdue").with_params({"overdue_days": 21}).hash == variant.hash
    assert get_rule_pack("overdue").params == {"overdue_days": 28}  # the base is unchanged


def test_no_overrides_is_the_pack_itself():
    pack = get_rule_pack("stard-qids")
    assert pack.with_params({}) is pack


def test_cut_point_variants():
    variant = get_rule_pack("schueller2015-phq9").with_params(
        {"tolerance_days": 3, "thresholds.14": "10"})
    assert variant.id == "schueller2015-phq9|thresholds.14=10,tolerance_days=3"
    assert variant.params == {"instrument": "PHQ-9", "tolerance_days": 3,
                              "thresholds": {"4": 17, "9": 13, "14": 10}}
    assert get_rule_pack("schueller2015-phq9|tolerance_days=3,thresholds.14=10") == variant


def test_expected_recovery_variants():
    pack = get_rule_pack("expected-recovery")
    variant = pack.with_params({"probability": "0.90", "min_episodes": "50"})
    assert variant.id == "expected-recovery|min_episodes=50,probability=0.9"
    assert (variant.params["probability"], variant.params["min_episodes"]) == ("0.9", 50)
    assert pack.with_params({"earliest_week": 4}).params["earliest_week"] == 4


@pytest.mark.parametrize(("pack_id", "overrides", "field"), [
    ("overdue", {"overdue_days": 0}, "overdue_days"),
    ("overdue", {"overdue_days": "four weeks"}, "overdue_days"),
    ("overdue", {"overdue_days": True}, "overdue_days"),
    ("overdue", {"overdue_days": 2.5}, "overdue_days"),
    ("overdue", {"days": 21}, "days"),
    ("schueller2015-phq9", {"tolerance_days": 15}, "tolerance_days"),
    ("schueller2015-phq9", {"thresholds.5": 12}, "thresholds.5"),
    ("schueller2015-phq9", {"thresholds.9": 28}, "thresholds.9"),
    ("schueller2015-phq9", {"thresholds.9": 0}, "thresholds.9"),
    ("schueller2015-phq9", {"instrument": "GAD-7"}, "instrument"),
    ("stard-qids", {"tolerance_days": 7}, "tolerance_days"),  # weeks 4 and 6 would overlap
    ("expected-recovery", {"probability": "1"}, "probability"),
    ("expected-recovery", {"probability": "0"}, "probability"),
    ("expected-recovery", {"probability": "eighty"}, "probability"),
    ("expected-recovery", {"min_episodes": 2}, "min_episodes"),
    ("expected-recovery", {"earliest_week": 2}, "earliest_week"),
    ("phq9-item9", {"positive_from": 4}, "positive_from"),
])
def test_bad_parameters_name_the_field(pack_id, overrides, field):
    with pytest.raises(InvalidRulePackParameterError) as caught:
        get_rule_pack(pack_id).with_params(overrides)
    assert caught.value.field == field
    assert caught.value.code == "invalid-rule-pack-parameter"


def test_messages_of_bad_parameters():
    with pytest.raises(InvalidRulePackParameterError, match=r"overdue_days: expected a whole "
                       r"number in 1\.\.365, got 0"):
        get_rule_pack("overdue").with_params({"overdue_days": 0})
    with pytest.raises(InvalidRulePackParameterError, match="windows of weeks 4 and 6 overlap"):
        get_rule_pack("stard-qids").with_params({"tolerance_days": 7})
    with pytest.raises(InvalidRulePackParameterError, match="decision points: weeks 4, 9, 14"):
        get_rule_pack("schueller2015-phq9").with_params({"thresholds.5": 12})


def test_a_variant_id_without_a_value_is_refused():
    with pytest.raises(InvalidRulePackParameterError) as caught:
        get_rule_pack("overdue|overdue_days")
    assert caught.value.field == "overdue_days"


@pytest.mark.parametrize(("instrument", "score", "band"), [
    ("PHQ-9", 4, "minimal"), ("PHQ-9", 5, "mild"), ("PHQ-9", 19, "moderately severe"),
    ("QIDS-SR16", 5, "none"), ("QIDS-SR16", 21, "very severe"), ("HAM-D17", 24, "severe"),
])
def test_baseline_bands(instrument, score, band):
    assert baseline_band(get_rule_pack("expected-recovery"), instrument, score) == band
    assert baseline_band(None, instrument, score) == band


def test_no_baseline_bands_for_madrs():
    with pytest.raises(ValueError):
        baseline_band(None, "MADRS", 20)
