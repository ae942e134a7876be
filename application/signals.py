"""A clinic's signal rules as use cases over many episodes (ADR 0033): choose the rule packs that
watch its episodes and apply the choice to each open one, fit and record its expected-recovery
curve. Each episode's own change is ``OutcomesApplication.watch_signals``; the clinic's record
is the ``ClinicSignals`` aggregate (domain.signals.clinic)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from application.adoption import SkippedEpisode
from application.outcomes import OutcomesApplication, project_events
from domain.errors import EpisodeClosedError, EpisodeNotFoundError, VersionConflictError
from domain.signals.clinic import ClinicSignals
from domain.signals.curves import RecoveryCurve
from domain.signals.packs import get_rule_pack

# The ids of a clinic's open episodes (wired to the episodes read model, caught up first).
OpenEpisodes = Callable[[str], Iterable[UUID]]


@dataclass(frozen=True)
class ClinicWatch:
    """What a clinic's choice (or new fit) did: ``recorded`` whether the clinic's record
    changed; episodes ``watched`` (a SignalsWatched appended), ``unchanged`` (watched so
    already), ``skipped`` (closed or gone meanwhile, with the error code)."""

    clinic_id: str
    recorded: bool
    watched: tuple[UUID, ...]
    unchanged: tuple[UUID, ...]
    skipped: tuple[SkippedEpisode, ...]


class ClinicSignalChoices:
    """The clinic-wide signal use cases, one episode (and one save) at a time after the
    clinic's own record."""

    def __init__(self, app: OutcomesApplication, open_episodes: OpenEpisodes) -> None:
        self.app, self.open_episodes = app, open_episodes

    def choose_rule_packs(self, clinic_id: str, *, packs: Sequence[str], reason: str,
                          recorded_by: str) -> ClinicWatch:
        """Record ``packs`` (rule pack ids, variants allowed) as the clinic's choice
        (RulePacksChosen), then watch each open episode of the clinic with the chosen packs
        that apply to its instrument (and the clinic's latest curve of that instrument for
        expected recovery). Raises UnknownRulePackError, InvalidRulePackParameterError,
        InvalidInputError before anything is recorded."""
        chosen = [get_rule_pack(p) for p in packs]
        recorded = self._update(clinic_id, recorded_by, lambda clinic: clinic.choose(
            packs=chosen, reason=reason, recorded_by=recorded_by))
        return self._apply(clinic_id, recorded, recorded_by)

    def record_recovery_fit(self, curve: RecoveryCurve, *, recorded_by: str) -> ClinicWatch:
        """Record a fitted curve (RecoveryCurveFitted) for its clinic; when the clinic's choice
        includes expected recovery, its open episodes of that instrument are watched with the
        new curve. Raises InvalidInputError."""
        recorded = self._update(curve.clinic_id, recorded_by, lambda clinic: clinic.record_fit(
            curve=curve, recorded_by=recorded_by))
        return self._apply(curve.clinic_id, recorded, recorded_by, only=curve.instrument)

    def fit(self, clinic_id: str, instrument: str, *, min_episodes: int | None,
            recorded_by: str) -> tuple[RecoveryCurve, ClinicWatch]:
        """Fit the expected-recovery pack (``min_episodes`` overriding its minimum per band)
        on the clinic's closed ``instrument`` episodes, as of today, and record it. Raises
        InvalidRulePackParameterError, ValueError (an instrument without bands)."""
        # statsmodels is imported by the fit only, not by every process that builds Services
        from application.backtest import closed_series
        from application.recovery_fit import fit_recovery_curve

        pack = get_rule_pack("expected-recovery")
        if min_episodes is not None:
            pack = pack.with_params({"min_episodes": min_episodes})
        now = self.app.clock()
        curve = fit_recovery_curve(clinic_id, instrument, closed_series(self.app, clinic_id),
                                   pack=pack, now=now, as_of=now.date())
        return curve, self.record_recovery_fit(curve, recorded_by=recorded_by)

    def _update(self, clinic_id: str, recorded_by: str,
                change: Callable[[ClinicSignals], bool]) -> bool:
        """Load (or start) the clinic's record, apply ``change`` and save; retried on a lost
        race. Returns whether anything was appended."""
        for _attempt in range(self.app.max_attempts):
            ident = ClinicSignals.id_for(clinic_id)
            if ident in self.app.repository:
                clinic: ClinicSignals = self.app.repository.get(
                    ident, projector_func=project_events)
            else:
                clinic = ClinicSignals.start(clinic_id=clinic_id, recorded_by=recorded_by)
            changed = change(clinic)
            try:
                if changed:
                    self.app.save(clinic)
                return changed
            except IntegrityError:
                continue
        raise VersionConflictError(f"the signal rules of clinic {clinic_id} kept changing")

    def _apply(self, clinic_id: str, recorded: bool, recorded_by: str,
               only: str | None = None) -> ClinicWatch:
        """Watch each open episode of the clinic as its choice says (``only``: episodes of
        that instrument, when the choice has an expected-recovery pack)."""
        clinic = self.app.clinic_signals(clinic_id)
        watched: list[UUID] = []
        unchanged: list[UUID] = []
        skipped: list[SkippedEpisode] = []
        if clinic is None or clinic.packs is None:
            return ClinicWatch(clinic_id, recorded, (), (), ())
        for episode_id in self.open_episodes(clinic_id):
            try:
                episode = self.app.get_episode(episode_id)
                watching = clinic.watching(episode.instrument)
                if watching is None or (only is not None and (
                        episode.instrument != only or watching[1] is None)):
                    continue
                result = self.app.watch_signals(
                    episode_id, packs=watching[0], curve=watching[1],
                    reason=f"the clinic's choice: {clinic.reason}", recorded_by=recorded_by)
            except (EpisodeClosedError, EpisodeNotFoundError) as exc:
                skipped.append(SkippedEpisode(episode_id, exc.code))
                continue
            (unchanged if result.replayed else watched).append(episode_id)
        return ClinicWatch(clinic_id, recorded, tuple(watched), tuple(unchanged),
                           tuple(skipped))
