"""Standard instruments: items, ranges, severity bands, LOINC codes and the scoring rules.

Scores are exact (unit: points): an ``int`` when whole (every total, every complete item sum),
a ``fractions.Fraction`` only when proration leaves a remainder, so that a prorated PHQ-9 of 4.5 is
compared with "< 5" exactly as the source writes it (SPEC §1.4) and whole scores stay in integer
arithmetic (ADR 0027). Sources: Kroenke, Spitzer & Williams
2001 (PHQ-9); Spitzer, Kroenke, Williams & Löwe 2006 (GAD-7); LOINC codes from SPEC §4.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from domain.errors import (
    ItemCountError,
    ItemOutOfRangeError,
    MissingScoreError,
    TotalOutOfRangeError,
    UnknownInstrumentError,
)

MissingPolicy = Literal["prorate_le2", "prorate_le1", "complete_only"]
Rounding = Literal["none", "half_up", "floor"]
MISSING_POLICIES: tuple[MissingPolicy, ...] = ("prorate_le2", "prorate_le1", "complete_only")
ROUNDINGS: tuple[Rounding, ...] = ("none", "half_up", "floor")
# An exact score in points: an int when whole, a Fraction with denominator > 1 otherwise.
Points = int | Fraction

# Assessment flags (data quality and safety); kept on the assessment, never stage decisions.
UNSCORABLE = "ASSESSMENT_UNSCORABLE"
PRORATED = "PRORATED"
TOTAL_MISMATCH = "TOTAL_MISMATCH"
TOTAL_ABOVE_MAX = "TOTAL_ABOVE_MAX"
SAFETY_ITEM9_POSITIVE = "SAFETY_ITEM9_POSITIVE"
SAFETY_ITEM9_UNANSWERED = "SAFETY_ITEM9_UNANSWERED"


@dataclass(frozen=True)
class Band:
    """A severity band: totals from ``lower`` (inclusive, points) up to the next band's lower bound."""

    lower: int
    label: str


@dataclass(frozen=True)
class Instrument:
    """A rating scale as published: scored items (each 0..``item_max``), total range and bands.

    ``item_count`` is the number of summed items (0 for total-only instruments); ``extra_items``
    are stored but never summed (the difficulty question: PHQ-9 item 10, Kroenke 2001; the
    GAD-7's 8th answer, SPEC §1.2). ``max_missing`` is how many summed
    items each missing-item policy may prorate (SPEC §1.4, C2).
    """

    code: str
    title: str
    total_max: int
    item_count: int = 0
    item_max: int = 3
    extra_items: int = 0
    loinc_panel: str | None = None
    loinc_total: str | None = None
    loinc_items: tuple[str, ...] = ()
    bands: tuple[Band, ...] = ()
    max_missing: tuple[tuple[MissingPolicy, int], ...] = ()
    safety_item: int | None = None  # 1-based item whose any non-zero answer needs review
    source: str = ""

    @property
    def total_only(self) -> bool:
        """True when only a total is recorded (HAM-D17, MADRS, QIDS-SR16 here)."""
        return self.item_count == 0

    def severity(self, total: Points | None) -> str | None:
        """The band label for ``total`` (points; lower bounds inclusive), or None without bands."""
        if total is None or not self.bands:
            return None
        label = None
        for band in self.bands:
            if total >= band.lower:
                label = band.label
        return label

    def missing_allowed(self, policy: MissingPolicy) -> int:
        """How many summed items ``policy`` lets this instrument prorate over."""
        return dict(self.max_missing)[policy]


PHQ9 = Instrument(
    code="PHQ-9",
    title="Patient Health Questionnaire-9",
    total_max=27,
    item_count=9,
    extra_items=1,
    loinc_panel="44249-1",
    loinc_total="44261-6",
    loinc_items=(
        "44250-9", "44255-8", "44259-0", "44254-1", "44251-7",
        "44258-2", "44252-5", "44253-3", "44260-8", "69722-7",
    ),
    bands=(
        Band(0, "minimal"), Band(5, "mild"), Band(10, "moderate"),
        Band(15, "moderately severe"), Band(20, "severe"),
    ),
    max_missing=(("prorate_le2", 2), ("prorate_le1", 1), ("complete_only", 0)),
    safety_item=9,
    source="Kroenke, Spitzer & Williams 2001, J Gen Intern Med 16:606-613",
)

# PHQ-8 (Kroenke et al. 2009): the PHQ-9 without item 9 (and without the difficulty question,
# CamCOPS phq8 citing Kroenke 2009 p171). An instrument of its own, never a PHQ-9 missing item 9:
# its own total (0-24), no item-9 safety flag, proration over its own 8 items (SPEC §1.2b, §1.4
# applied to 8 items [E]). Its items reuse the PHQ-9 item codes; the PHQ-8 panel and total LOINC
# codes are not recorded here until checked against LOINC (SPEC §6): importers recognise a PHQ-8
# by its instrument code (CSV) or a cited questionnaire that names it (FHIR), never by the
# absence of item 9 (a PHQ-9 with item 9 unanswered must keep its SAFETY_ITEM9_UNANSWERED flag).
PHQ8 = Instrument(
    code="PHQ-8",
    title="Patient Health Questionnaire-8",
    total_max=24,
    item_count=8,
    loinc_items=PHQ9.loinc_items[:8],
    bands=PHQ9.bands,
    max_missing=PHQ9.max_missing,
    source="Kroenke, Strine, Spitzer, Williams, Berry & Mokdad 2009, J Affect Disord "
           "114:163-173 (SPEC §1.2b)",
)

# The adolescent PHQ-9 (PHQ-9 Modified for Teens, LOINC 89204-2): same 9 items and bands, its
# own series: an episode staging PHQ-9 never folds it (C12). Item 9 keeps its safety meaning.
PHQ_A = Instrument(
    code="PHQ-A",
    title="PHQ-9 Modified for Teens (adolescent PHQ-9)",
    total_max=27,
    item_count=9,
    loinc_total="89204-2",
    bands=PHQ9.bands,
    max_missing=PHQ9.max_missing,
    safety_item=9,
    source="Johnson et al. 2002, J Adolesc Health 30:196-204; LOINC 89204-2 (SPEC §4.1)",
)

# PHQ-2: PHQ-9 items 1 and 2, total 0-6 (>= 3: positive screen). A screen, never staged.
PHQ2 = Instrument(
    code="PHQ-2",
    title="Patient Health Questionnaire-2",
    total_max=6,
    item_count=2,
    loinc_panel="55757-9",
    loinc_total="55758-7",
    loinc_items=("44250-9", "44255-8"),
    bands=(Band(0, "negative screen"), Band(3, "positive screen")),
    max_missing=(("prorate_le2", 0), ("prorate_le1", 0), ("complete_only", 0)),
    source="Kroenke, Spitzer & Williams 2003, Med Care 41:1284-1292",
)

GAD7 = Instrument(
    code="GAD-7",
    title="Generalized Anxiety Disorder-7",
    total_max=21,
    item_count=7,
    # The difficulty question many GAD-7 forms end with (LOINC 69722-7, as PHQ-9 item 10):
    # accepted as an 8th answer, stored, never summed (SPEC §1.2).
    extra_items=1,
    loinc_panel="69737-5",
    loinc_total="70274-6",
    loinc_items=("69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7",
                 "69722-7"),
    bands=(Band(0, "minimal"), Band(5, "mild"), Band(10, "moderate"), Band(15, "severe")),
    # C2: no authoritative rule; at most 1 of 7 missing under the default policy [E].
    max_missing=(("prorate_le2", 1), ("prorate_le1", 1), ("complete_only", 0)),
    source="Spitzer, Kroenke, Williams & Löwe 2006, Arch Intern Med 166:1092-1097",
)

HAMD17 = Instrument(
    code="HAM-D17", title="Hamilton Depression Rating Scale, 17 items (total only)", total_max=52,
    source="Hamilton 1960; thresholds Frank et al. 1991 (SPEC §1.3, C11)",
)

MADRS = Instrument(
    code="MADRS", title="Montgomery-Åsberg Depression Rating Scale (total only)", total_max=60,
    source="Montgomery & Åsberg 1979; no staging thresholds by default (SPEC §1.3)",
)

QIDS_SR16 = Instrument(
    code="QIDS-SR16",
    title="Quick Inventory of Depressive Symptomatology, self-report, 16 items (total only)",
    total_max=27,
    bands=(
        Band(0, "none"), Band(6, "mild"), Band(11, "moderate"),
        Band(16, "severe"), Band(21, "very severe"),
    ),
    source="Rush et al. 2003; bands from the ids-qids.org interpretation table (SPEC §1.3)",
)

INSTRUMENTS: dict[str, Instrument] = {
    i.code: i for i in (PHQ9, GAD7, HAMD17, MADRS, QIDS_SR16, PHQ_A, PHQ2, PHQ8)}


def get_instrument(code: str) -> Instrument:
    """The instrument named ``code`` ("PHQ-9", "GAD-7", "HAM-D17", "MADRS", "QIDS-SR16",
    "PHQ-A", "PHQ-2", "PHQ-8").

    Raises UnknownInstrumentError for any other code.
    """
    try:
        return INSTRUMENTS[code]
    except (KeyError, TypeError):
        raise UnknownInstrumentError(
            f"unknown instrument {code!r}; known: {', '.join(INSTRUMENTS)}", field="instrument"
        ) from None


@dataclass(frozen=True)
class Score:
    """The scored value of one assessment.

    ``value`` is the total used for staging (points, exact, after rounding: an int when whole, else
    a Fraction) or None when the assessment cannot be scored; ``exact`` is the same before
    rounding; ``reported_total`` is the
    total the source gave, kept as recorded; ``flags`` are data-quality and safety flags.
    """

    value: Points | None
    exact: Points | None
    answered: int | None
    reported_total: int | None
    flags: tuple[str, ...]

    @property
    def scorable(self) -> bool:
        return self.value is not None


def _is_int(value: object) -> bool:
    return type(value) is int  # bool and float are not scores


def validate(instrument: Instrument, items: Sequence[int | None] | None, total: int | None) -> None:
    """Check the shape and ranges of one assessment's answers.

    ``items``: one entry per item in published order, each an int 0..item_max or None (missing);
    PHQ-9 takes 9 or 10 items and GAD-7 7 or 8 (the difficulty question, stored but never
    summed); PHQ-8 takes 8.
    ``total``: the reported total in points. Raises ItemCountError, ItemOutOfRangeError,
    TotalOutOfRangeError or MissingScoreError; ``field`` names the offending entry.
    Total-only instruments reject items (C12); without items a total must lie in 0..total_max.
    """
    if items is None and total is None:
        raise MissingScoreError(f"{instrument.code}: give items or a total", field="total")
    if total is not None:
        if not _is_int(total) or total < 0:
            raise TotalOutOfRangeError(
                f"{instrument.code}: total must be a whole number of points >= 0", field="total"
            )
        if items is None and total > instrument.total_max:
            raise TotalOutOfRangeError(
                f"{instrument.code}: total {total} is outside 0..{instrument.total_max}",
                field="total",
            )
    if items is None:
        return
    allowed = {instrument.item_count, instrument.item_count + instrument.extra_items}
    if instrument.total_only or len(items) not in allowed:
        expected = "no items (total only)" if instrument.total_only else (
            " or ".join(str(n) for n in sorted(allowed)) + " items")
        raise ItemCountError(
            f"{instrument.code}: got {len(items)} items, expected {expected}", field="items"
        )
    for index, value in enumerate(items):
        if value is None:
            continue
        if not _is_int(value) or not 0 <= value <= instrument.item_max:
            raise ItemOutOfRangeError(
                f"{instrument.code}: item {index + 1} must be a whole number 0..{instrument.item_max}",
                field=f"items[{index}]",
            )


def exact_points(numerator: int, denominator: int) -> Points:
    """``numerator / denominator`` points exactly: an int when it divides, else a Fraction.
    Raises ZeroDivisionError for a zero ``denominator``."""
    whole, remainder = divmod(numerator, denominator)
    return whole if remainder == 0 else Fraction(numerator, denominator)


def round_total(value: Points, rounding: Rounding) -> Points:
    """Apply the proration rounding (SPEC §1.4, C3): ``none`` keeps the exact rational; whole
    values (ints) are never changed."""
    if isinstance(value, int):
        return value
    if rounding == "half_up":
        return math.floor(value + Fraction(1, 2))
    if rounding == "floor":
        return math.floor(value)
    return value


def score(
    instrument: Instrument,
    items: Sequence[int | None] | None,
    total: int | None,
    *,
    missing_policy: MissingPolicy = "prorate_le2",
    rounding: Rounding = "none",
) -> Score:
    """Score one assessment (validates first; see ``validate`` for shapes and errors).

    With items the total is recomputed from them (C1): sum of answered summed items, prorated as
    sum × n / answered when no more than the policy's limit are missing (qscorer citing Arrieta et
    al. 2017; SPEC §1.4), else unscorable (flag ASSESSMENT_UNSCORABLE, never 0). A reported total
    that differs from a complete item sum, or exceeds the maximum, is kept and flagged.
    Item 9 of PHQ-9 (and PHQ-A) >= 1 flags SAFETY_ITEM9_POSITIVE; unanswered,
    SAFETY_ITEM9_UNANSWERED (SPEC §1.1).
    """
    validate(instrument, items, total)
    flags: list[str] = []
    if total is not None and total > instrument.total_max:
        flags.append(TOTAL_ABOVE_MAX)
    if items is None:
        given = total if total is not None and total <= instrument.total_max else None
        if given is None:
            flags.append(UNSCORABLE)
        return Score(given, given, None, total, tuple(flags))

    summed = list(items[: instrument.item_count])
    answered = [v for v in summed if v is not None]
    missing = len(summed) - len(answered)
    if instrument.safety_item is not None:
        answer = summed[instrument.safety_item - 1]
        if answer is None:
            flags.append(SAFETY_ITEM9_UNANSWERED)
        elif answer >= 1:
            flags.append(SAFETY_ITEM9_POSITIVE)
    if missing > instrument.missing_allowed(missing_policy):
        flags.append(UNSCORABLE)
        return Score(None, None, len(answered), total, tuple(flags))
    exact = exact_points(sum(answered) * len(summed), len(answered))
    if missing:
        flags.append(PRORATED)
    if total is not None and total != exact:
        flags.append(TOTAL_MISMATCH)
    return Score(round_total(exact, rounding), exact, len(answered), total, tuple(flags))


# Distinct (instrument, answers, policy, rounding) inputs remembered by ``score_memoised``: a
# few thousand Score values (well under a MiB), enough for every answer pattern a process meets.
SCORE_MEMO_SIZE = 4096


def score_memoised(
    code: str,
    items: tuple[int | None, ...] | None,
    total: int | None,
    *,
    missing_policy: MissingPolicy,
    rounding: Rounding,
) -> Score:
    """``score(get_instrument(code), items, total, ...)``, remembered for the last
    ``SCORE_MEMO_SIZE`` distinct inputs: scoring is a pure function of them, and the fold scores
    every assessment of an episode again at each command.

    Only inputs whose equality is their identity as scores are remembered: a str code and
    policy, and plain ``int``/None answers in a tuple (``True == 1`` and ``1.0 == 1`` would
    share a cache entry, yet ``validate`` rejects them); anything else is scored afresh. Errors
    are those of ``get_instrument`` and ``score``, raised every time (nothing is remembered
    for an input that does not score).
    """
    if (type(code) is str and type(missing_policy) is str and type(rounding) is str
            and (total is None or type(total) is int)
            and (items is None or (type(items) is tuple
                                   and all(v is None or type(v) is int for v in items)))):
        return _score_remembered(code, items, total, missing_policy, rounding)
    return score(get_instrument(code), items, total, missing_policy=missing_policy,
                 rounding=rounding)


@functools.lru_cache(maxsize=SCORE_MEMO_SIZE)
def _score_remembered(code: str, items: tuple[int | None, ...] | None, total: int | None,
                      missing_policy: MissingPolicy, rounding: Rounding) -> Score:
    return score(get_instrument(code), items, total, missing_policy=missing_policy,
                 rounding=rounding)


def format_points(value: Points | None) -> str | None:
    """A score for people and JSON: "8", "4.5", "3.857" (3 decimals at most); None stays None."""
    if value is None:
        return None
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.3f}".rstrip("0").rstrip(".")


def points(value: Points | None) -> int | float | None:
    """A score as a JSON number: an int when whole, else a float to 3 decimals (4.5, 3.857)."""
    if value is None:
        return None
    if value.denominator == 1:
        return value.numerator
    return round(float(value), 3)
