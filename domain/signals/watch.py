"""Which rule packs watch an episode, and the episode's on-track status under them (ADR 0030,
0031, 0032): one home for both, read by the Episode aggregate (which raises the off-track alerts
and BackOnTrack) and by the caseload read model (which shows the status).

An episode is watched by the packs its latest ``SignalsWatched`` event names (``{"packs":
[describe() ...], "curve": describe() | None}``), or, without one, by the defaults:
``schueller2015-phq9`` for PHQ-9 episodes and ``stard-qids`` for QIDS-SR16 ones (issue 13), each
only where it ``applies`` to the staged instrument.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any, Literal

from domain.criteria.timeline import Point
from domain.signals.curves import RecoveryCurve
from domain.signals.evaluate import applies, current_signal
from domain.signals.packs import BUILTIN_PACKS, RulePack

OnTrack = Literal["on_track", "not_on_track", "insufficient", "not_yet"]
DEFAULT_SIGNAL_PACKS = ("schueller2015-phq9", "stard-qids")
SIGNAL_KINDS = ("cut_points", "expected_recovery")


def signal_packs(watching: Mapping[str, Any] | None,
                 instrument: str) -> tuple[list[RulePack], RecoveryCurve | None]:
    """The cut-point and expected-recovery packs that watch an episode staging ``instrument``
    and the clinic's recovery curve: ``watching`` (a SignalsWatched's ``{"packs", "curve"}``),
    or None for the defaults (no curve)."""
    if watching is None:
        return [p for p in (BUILTIN_PACKS[i] for i in DEFAULT_SIGNAL_PACKS)
                if applies(p, instrument)], None
    recorded = watching.get("curve")
    curve = RecoveryCurve.from_description(recorded) if recorded else None
    packs = [RulePack.from_description(d) for d in watching["packs"]
             if d["kind"] in SIGNAL_KINDS]
    return [p for p in packs if applies(p, instrument, curve)], curve


def on_track(watching: Mapping[str, Any] | None, instrument: str, points: Sequence[Point], *,
             opened_on: date) -> OnTrack:
    """The episode's on-track status over its staged ``points`` (``staged_points`` of the valid
    assessments, clinical order): ``not_on_track`` when any watching pack's current signal is,
    else ``on_track`` when any is, else ``insufficient`` when an expected-recovery pack has no
    curve for the baseline's band, else ``not_yet`` (no decision due yet, or no pack applies)."""
    packs, curve = signal_packs(watching, instrument)
    statuses: set[str] = set()
    for pack in packs:
        signal = current_signal(pack, points, opened_on=opened_on, curve=curve)
        if signal is not None:
            statuses.add(signal.status)
    order: tuple[OnTrack, ...] = ("not_on_track", "on_track", "insufficient")
    return next((status for status in order if status in statuses), "not_yet")
