"""From FHIR answers to item scores and totals: LOINC codes, answer ordinals, whole numbers.

The pieces of ``importers.fhir`` that know codes, not files: which instrument a set of LOINC
codes names, the item position of a question code, the ordinal of an answer, and the total as a
whole number of points. Sources: SPEC §4 (LOINC PHQ-9 44249-1, GAD-7 69737-5, PHQ-2 55757-9;
answer list LL358-3 LA6568-5..LA6571-9 = 0..3; difficulty list LL359-1 LA6572-7 = 0,
LA6573-5 = 1, LA6575-0 = 2, LA6574-3 = 3, not in code order); ordinal extensions from FHIR R4
(``ordinalValue``), SDC/R5 (``itemWeight``) and ISO 21090 (``iso21090-CO-value``, STU3).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from domain.instruments import INSTRUMENTS, Instrument
from importers.records import ANSWER_CODE_MISMATCH

LOINC = "http://loinc.org"
ORDINAL_EXTENSIONS = frozenset({
    "http://hl7.org/fhir/StructureDefinition/ordinalValue",
    "http://hl7.org/fhir/StructureDefinition/itemWeight",
    "http://hl7.org/fhir/StructureDefinition/iso21090-CO-value",
})
FREQUENCY = {"LA6568-5": 0, "LA6569-3": 1, "LA6570-1": 2, "LA6571-9": 3}
DIFFICULTY = {"LA6572-7": 0, "LA6573-5": 1, "LA6575-0": 2, "LA6574-3": 3}
DIFFICULTY_ITEM = "69722-7"  # PHQ-9 item 10 / GAD-7 answer 8: stored, never summed
SCORE_UNITS = frozenset({"{score}", "score"})

# Instruments never inferred from item codes alone: a PHQ-8 shares the PHQ-9's first 8 item codes,
# and the absence of item 9 is no evidence of a PHQ-8 (a PHQ-9 with item 9 unanswered must keep its
# SAFETY_ITEM9_UNANSWERED flag, SPEC §1.1, §1.2b). They are recognised when named (``named_in``).
NAMED_ONLY = frozenset({"PHQ-8"})
PANELS = {i.loinc_panel: i for i in INSTRUMENTS.values() if i.loinc_panel}
TOTALS = {i.loinc_total: i for i in INSTRUMENTS.values() if i.loinc_total}
ITEMS = {code: [i for i in INSTRUMENTS.values() if code in i.loinc_items
                and i.code not in NAMED_ONLY]
         for code in {c for i in INSTRUMENTS.values() for c in i.loinc_items}}
KNOWN_CODES = frozenset(PANELS) | frozenset(TOTALS) | frozenset(ITEMS)
_CODE_IN_TEXT = re.compile(r"(?<![\d.-])(\d{3,7}-\d)(?!\d)")
_NAME_IN_TEXT = {"PHQ-8": re.compile(r"(?<![A-Za-z0-9])PHQ[-_ ]?8(?![0-9])", re.IGNORECASE)}


class SkipResource(Exception):
    """The resource cannot be imported; ``reason`` is a short stable phrase for Skipped."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Answer:
    """One answered (or unanswered) question, whatever resource carried it.

    ``question``: the LOINC code of the question (an item, a total or a panel). ``codes``: LOINC
    answer codes given (LA...). ``ordinal``: the answer's score from an ordinal extension on the
    answer or from the questionnaire's answer option. ``number``: a numeric value as given
    (int, Decimal or str, in points). All empty = the question was not answered.
    """

    question: str
    codes: tuple[str, ...] = ()
    ordinal: Decimal | None = None
    number: int | Decimal | str | None = None

    @property
    def empty(self) -> bool:
        return not self.codes and self.ordinal is None and self.number is None


def codes_in(text: str | None) -> list[str]:
    """Known LOINC codes (panels, totals, items) written inside ``text``: a linkId "/44250-9",
    a definition "http://loinc.orgfhir/DataElement/44250-9", a URL or identifier."""
    return [c for c in _CODE_IN_TEXT.findall(text or "") if c in KNOWN_CODES]


def loinc_code(codings: Iterable[Any] | None) -> str | None:
    """The first known LOINC code among FHIR Codings (system LOINC or none), else None."""
    for coding in codings or ():
        if coding.code in KNOWN_CODES and coding.system in (None, LOINC):
            return str(coding.code)
    return None


def answer_codes(codings: Iterable[Any | None]) -> tuple[str, ...]:
    """The codes of LOINC answer Codings (system LOINC or none), in order."""
    return tuple(str(c.code) for c in codings if c is not None and c.code and c.system in (None, LOINC))


def ordinal(elements: Iterable[Any | None]) -> Decimal | None:
    """The value of the first ordinal extension (ordinalValue, itemWeight, iso21090-CO-value) on
    any of ``elements`` (Codings, answers, answer options), else None."""
    for element in elements:
        for extension in getattr(element, "extension", None) or ():
            if extension.url in ORDINAL_EXTENSIONS:
                value = extension.valueDecimal
                if value is None:
                    value = getattr(extension, "valueInteger", None)
                if value is not None:
                    return Decimal(value)
    return None


def quantity(value: Any | None) -> Decimal | None:
    """A Quantity's value in points; unit "{score}", "score" or none. Raises SkipResource for
    any other unit."""
    if value is None:
        return None
    units = {u for u in (value.unit, value.code) if u}
    if units - SCORE_UNITS:
        raise SkipResource("total has a unit other than {score}")
    return None if value.value is None else Decimal(value.value)


def whole(value: int | Decimal | str, what: str) -> int:
    """``value`` as an int: 12, Decimal("12.0") and "12" are 12. Raises SkipResource
    ("<what> is not a whole number") for 12.5, "twelve", booleans."""
    if isinstance(value, bool):
        raise SkipResource(f"{what} is not a whole number")
    if isinstance(value, int):
        return value
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise SkipResource(f"{what} is not a whole number") from None
    if not number.is_finite() or number != number.to_integral_value():
        raise SkipResource(f"{what} is not a whole number")
    return int(number)


def named_in(texts: Iterable[str]) -> Instrument | None:
    """A named-only instrument (``NAMED_ONLY``: PHQ-8) that one of ``texts`` names: a cited
    Questionnaire's title, name, URL or identifier such as "PHQ-8" or ".../phq8". None else."""
    texts = list(texts)
    for code, pattern in _NAME_IN_TEXT.items():
        if any(pattern.search(text or "") for text in texts):
            return INSTRUMENTS[code]
    return None


def instrument_for(codes: Iterable[str]) -> Instrument | None:
    """The instrument named by LOINC codes: a panel code, else a total code, else the instrument
    with the most item codes present (a tie goes to the shorter form: items 1 and 2 alone are a
    PHQ-2). None when no code is known."""
    codes = list(codes)
    for table in (PANELS, TOTALS):
        for code in codes:
            if code in table:
                return table[code]
    counts = Counter(i.code for code in set(codes) for i in ITEMS.get(code, ()))
    if not counts:
        return None
    best = max(counts.values())
    fits = [INSTRUMENTS[name] for name, count in counts.items() if count == best]
    return min(fits, key=lambda i: len(i.loinc_items))


def item_value(answer: Answer) -> tuple[int | None, bool]:
    """(points, answer code contradicts the ordinal) for one item answer.

    The ordinal extension wins; else the LOINC answer table (LL358-3); else a numeric answer;
    else None (never 0): free text is unresolvable. The difficulty question (69722-7: PHQ-9
    item 10, the GAD-7's 8th answer; never summed) trusts its LL359-1 code over any ordinal,
    since ordinals given by code order swap Very and Extremely.
    Raises SkipResource for an ordinal or number that is not a whole number.
    """
    difficulty = answer.question == DIFFICULTY_ITEM
    table = DIFFICULTY if difficulty else FREQUENCY
    from_code = next((table[c] for c in answer.codes if c in table), None)
    if difficulty and from_code is not None:
        return from_code, False
    if answer.ordinal is not None:
        value = whole(answer.ordinal, "item answer")
        return value, from_code is not None and from_code != value
    if from_code is not None:
        return from_code, False
    if answer.number is None or (isinstance(answer.number, str) and not _numeric(answer.number)):
        return None, False
    return whole(answer.number, "item answer"), False


def _numeric(text: str) -> bool:
    try:
        Decimal(text.strip())
    except InvalidOperation:
        return False
    return True


def total_value(answer: Answer) -> int | None:
    """The reported total in points, None when unanswered. Raises SkipResource when it is not a
    whole number (12.5, a coded value)."""
    if answer.empty:
        return None
    if answer.number is None:
        raise SkipResource("total is not a whole number")
    return whole(answer.number, "total")


def scores(instrument: Instrument, answers: Iterable[Answer]
           ) -> tuple[tuple[int | None, ...] | None, int | None, tuple[str, ...]]:
    """(items, total, flags) of one assessment from its answers.

    ``items`` in the instrument's published order by LOINC code (PHQ-9: 10 positions, item 10 =
    69722-7), None where unanswered; None altogether when no summed item appears (a difficulty
    answer alone is no assessment). The GAD-7's difficulty answer (69722-7, SPEC §1.2) takes an
    8th position only when the question appears, so a GAD-7 without it reads as before (7
    positions) and re-importing it stays a duplicate. ``total``:
    the first answered total question. ``flags``: ANSWER_CODE_MISMATCH when an answer code
    contradicts its ordinal (the ordinal is kept). Raises SkipResource (see ``whole``).
    """
    position = {code: n for n, code in enumerate(instrument.loinc_items)}
    items: list[int | None] = [None] * len(position)
    seen, asked, mismatch, total = False, False, False, None
    for answer in answers:
        if answer.question == instrument.loinc_total and total is None:
            total = total_value(answer)
        elif answer.question in position:
            slot = position[answer.question]
            seen |= slot < instrument.item_count
            asked |= slot >= instrument.item_count
            value, contradicts = item_value(answer)
            mismatch |= contradicts
            if items[slot] is None:  # a repeated question: the first answer counts
                items[slot] = value
    flags = (ANSWER_CODE_MISMATCH,) if mismatch else ()
    if instrument.code != "PHQ-9" and not asked:  # PHQ-9 imports always carried 10 positions
        items = items[: instrument.item_count]
    return (tuple(items) if seen else None), total, flags

