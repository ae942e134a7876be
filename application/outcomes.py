"""The application service: one method per use case, primitive arguments, results as plain data.

``OutcomesApplication`` is an ``eventsourcing.Application`` configured only by its ``env``: it loads
an Episode, runs one command, saves the new events atomically and returns what they say. A save
that loses a race (``IntegrityError``: another writer appended the same version) is retried on
fresh state, so concurrent writers never lose an event; with an expected version the caller gets
VersionConflictError instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from functools import partial
from typing import Any, ClassVar, NamedTuple
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import (
    EventStore,
    IntegrityError,
    JSONTranscoder,
    Notification,
    Transcoding,
)

from application.batch import EpisodePlan, PlanOutcome, RecordStep, VoidStep
from application.environment import ExplicitEnvironment
from application.views import (
    AlertView,
    AssessmentView,
    CourseOutcome,
    CriteriaRef,
    Retraction,
    StageDecisionView,
    alert_order,
    clinical_order,
    course_outcome,
)
from domain.criteria.builtin import BUILTIN, get_criteria
from domain.criteria.custom import CustomCriteria
from domain.criteria.sets import CriteriaSet
from domain.episode import Episode
from domain.errors import (
    DomainError,
    EpisodeClosedError,
    EpisodeNotFoundError,
    UnknownCriteriaError,
    VersionConflictError,
)
from domain.signals.clinic import ClinicSignals
from domain.signals.curves import RecoveryCurve
from domain.signals.packs import RulePack
from trust.cipher import EventErased, KeyedMapper

Clock = Callable[[], datetime]
SNAPSHOT_INTERVAL = 50  # an Episode snapshot every 50 events (ADR 0025)
logger = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


def project_events(aggregate: Any, events: Iterable[Any]) -> Any:
    """The library's projector (``eventsourcing.application.project_aggregate``) without its
    per-event ``assert isinstance(event, CanMutateProtocol)``, a runtime Protocol check that
    costs most of the replay of one event: each event's ``mutate`` in turn, from ``aggregate``
    (None for a full replay). Given to every ``repository.get`` of the write model
    (``projector_func``); tests/unit/application/test_projector.py holds it equal to the
    library's. Every stored event of this application is an ``Aggregate.Event`` (or a
    snapshot), so the check can only pass."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


@dataclass(frozen=True)
class RestoredSnapshot:
    """A snapshot already turned into its episode (``EpisodeSnapshots.get``): replay starts
    from ``episode``, at ``originator_version``."""

    originator_version: int
    episode: Episode

    def mutate(self, _: object) -> Episode:
        return self.episode


class EpisodeSnapshots(EventStore[UUID]):
    """The snapshot store (the library's ``EventStore`` over its snapshots table, through the
    application's mapper, so under per-patient encryption a snapshot is sealed with the
    patient's key). Snapshots are derived data (ADR 0025): ``get`` answers only the ones that
    decode and rebuild an Episode of the current ``Episode.class_version``, each as a
    ``RestoredSnapshot``; one that does not (edited or truncated state, a destroyed key,
    another class version) is skipped, so the repository replays the events instead and a
    read never fails because of a snapshot. Errors of the database itself propagate.

    Most episodes stay short of their first snapshot, and the query that finds none costs a
    round trip on every command (the guide: ~35 % of a bare ``get`` on PostgreSQL). So the store
    is told the version this process last read or wrote of each episode (``seen``) and does not
    ask for an episode it saw below ``interval`` events, nor for a version below it: a hint only,
    since another process may have moved the episode on, in which case its events are replayed
    from the start once, as without snapshots, and the version read is noted."""

    MAX_HINTS = 100_000  # episodes remembered (some 20 MiB); beyond, the hints are dropped

    def __init__(self, mapper: Any, recorder: Any, interval: int) -> None:
        super().__init__(mapper=mapper, recorder=recorder)
        self.interval = interval
        self._below: dict[UUID, int] = {}

    def seen(self, episode_id: UUID, version: int) -> None:
        """Note that this process read or wrote ``episode_id`` at ``version`` (its latest)."""
        if version >= self.interval:
            self._below.pop(episode_id, None)
            return
        if len(self._below) >= self.MAX_HINTS:
            self._below.clear()
        self._below[episode_id] = version

    def get(self, originator_id: UUID, *, gt: int | None = None, lte: int | None = None,
            desc: bool = False, limit: int | None = None) -> Iterator[Any]:
        if (lte is not None and lte < self.interval) or (
                lte is None and originator_id in self._below):
            return iter(())
        stored = self.recorder.select_events(originator_id=originator_id, gt=gt, lte=lte,
                                             desc=desc, limit=limit)
        return iter([r for r in map(self._restored, stored) if r is not None])

    def _restored(self, stored: Any) -> RestoredSnapshot | None:
        """The episode a stored snapshot holds, or None when it cannot be used."""
        try:
            snapshot = self.mapper.to_domain_event(stored)
            if (not isinstance(snapshot, Episode.Snapshot)
                    or snapshot.state.get("class_version") != Episode.class_version):
                return None
            episode = snapshot.mutate(None)
        except Exception as exc:  # derived data: the events are replayed instead
            logger.warning("snapshot %s v%s of episode %s ignored: %s", stored.topic,
                           stored.originator_version, stored.originator_id,
                           type(exc).__name__)
            return None
        return RestoredSnapshot(snapshot.originator_version, episode)


class DateAsISO(Transcoding):
    """Stores ``datetime.date`` as "YYYY-MM-DD" (the default JSON transcoder has no dates)."""

    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


@dataclass(frozen=True)
class CommandResult:
    """What one command changed.

    ``version``: the episode version after the command; ``position``: the global position
    (notification id) of its last stored event, None when nothing was stored; ``stage``: the
    current stage afterwards (``domain.stages.STAGES``); ``replayed``: the command repeated an
    earlier one (idempotency) and the earlier result is returned; ``stage_events`` /
    ``retracted``: decisions asserted / withdrawn by the command, in the order recorded;
    ``assessment``: the recorded assessment (record_assessment); ``outcome``: the course outcome
    (close_episode under NHS Talking Therapies or CMS159); ``criteria``: the set in force
    (open_episode); ``alerts``: the alerts the command raised, acknowledged or resolved, as they
    stand after it (ADR 0031); ``review_id``: the support review recorded.
    """

    episode_id: UUID
    version: int
    position: int | None
    stage: str
    stage_events: tuple[StageDecisionView, ...] = ()
    retracted: tuple[Retraction, ...] = ()
    assessment: AssessmentView | None = None
    outcome: CourseOutcome | None = None
    replayed: bool = False
    criteria: CriteriaRef | None = None
    alerts: tuple[AlertView, ...] = ()
    review_id: str | None = None


class OutcomesApplication(ExplicitEnvironment[UUID]):
    """Outcome Ledger's write model, configured only by the ``env`` it is given (never
    ``os.environ``; see ``application.environment``). ``clock`` gives the timezone-aware now
    used to reject future dates; ``max_attempts`` bounds retries after a lost
    optimistic-concurrency race."""

    name = "Outcomes"
    max_attempts = 5
    # The library's snapshots (ADR 0025): one after each save that reaches a multiple of the
    # interval, rebuilt with this module's projector (issue #269: a projector_func needs its
    # entry in snapshotting_projectors).
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {Episode: SNAPSHOT_INTERVAL}
    snapshotting_projectors: ClassVar[dict[type[Any], Any]] = {Episode: project_events}

    def __init__(self, env: Mapping[str, str] | None = None, *, clock: Clock = utc_now) -> None:
        super().__init__(env)
        self.clock = clock
        # custom_criteria's tail read: the sets' ids, and the position read up to
        self._custom_lock = threading.Lock()
        self._custom_ids: list[UUID] = []
        self._custom_read_to = 0
        # Commands on one episode run one at a time within this instance (threads of one server):
        # bounded retries alone let a writer lose every race when many threads share an episode.
        # Races with other processes are still settled by the IntegrityError retry.
        self._episode_locks = tuple(threading.Lock() for _ in range(64))

    def construct_snapshot_store(self) -> EventStore[UUID]:
        """The library's snapshot store as ``EpisodeSnapshots`` (unusable snapshots skipped)."""
        store = super().construct_snapshot_store()
        return EpisodeSnapshots(store.mapper, store.recorder,
                                self.snapshotting_intervals.get(Episode, SNAPSHOT_INTERVAL))

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        """The library's ``save``; the snapshot store is told each saved episode's version."""
        recordings = super().save(*objs, **kwargs)
        if isinstance(self.snapshots, EpisodeSnapshots):
            for obj in objs:
                if isinstance(obj, Episode):
                    self.snapshots.seen(obj.id, obj.version)
        return recordings

    def _take_snapshots(self, processing_event: Any) -> None:
        """The library's step of ``save()`` after the events are committed: a snapshot that
        cannot be written (a lost race, the episode erased meanwhile, a full disk) is logged,
        never reported as a failure of the command, whose events are already stored."""
        try:
            super()._take_snapshots(processing_event)
        except Exception as exc:
            logger.warning("snapshot not taken: %s: %s", type(exc).__name__, exc)

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())

    # -- commands ---------------------------------------------------------------------------

    def open_episode(self, *, patient_ref: str, clinic_id: str, recorded_by: str,
                     criteria: str = "acnp2006", params: Mapping[str, Any] | None = None,
                     instrument: str = "PHQ-9", opened_on: date | None = None,
                     episode_id: UUID | None = None) -> CommandResult:
        """Open an episode; ``opened_on`` defaults to today (UTC). Raises UnknownCriteriaError,
        InvalidCriteriaParameterError, UnstageableInstrumentError, InvalidInputError,
        FutureDateError.

        The clinic's choice is read before the save and once more after it: a choice recorded
        in between (choose_rule_packs did not see this episode yet) is applied to it with
        watch_signals, so no episode stays on the defaults (ADR 0033)."""
        episode, seen = self._opening(
            episode_id=episode_id or uuid4(), patient_ref=patient_ref, clinic_id=clinic_id,
            criteria=criteria, params=params, instrument=instrument, opened_on=opened_on,
            recorded_by=recorded_by)
        recordings = self.save(episode)
        opened = CommandResult(episode.id, episode.version, recordings[-1].notification.id,
                               episode.stage, criteria=CriteriaRef.of(episode.criteria_set.ref()))
        choice = self.clinic_signals(clinic_id)
        watching = choice.watching(episode.instrument) if choice is not None else None
        if choice is None or choice.version == seen or watching is None:
            return opened
        try:
            watched = self.watch_signals(
                episode.id, packs=watching[0], curve=watching[1],
                reason=f"the clinic's choice: {choice.reason}", recorded_by=recorded_by)
        except (EpisodeClosedError, EpisodeNotFoundError):
            return opened  # closed or erased meanwhile: nothing more to watch
        if watched.replayed:
            return opened
        return replace(opened, version=watched.version, position=watched.position,
                       stage=watched.stage, alerts=watched.alerts)

    def record_assessment(self, episode_id: UUID, *, instrument: str,
                          administered: date | datetime, recorded_by: str,
                          items: Sequence[int | None] | None = None, total: int | None = None,
                          assessment_id: str | None = None, source: dict[str, Any] | None = None,
                          expected_version: int | None = None) -> CommandResult:
        """Record an assessment and the stage changes it causes (see Episode.record_assessment).

        With a repeated ``assessment_id`` and identical content the first result is returned
        (``replayed``). Raises EpisodeNotFoundError, VersionConflictError and the episode's
        errors.
        """
        assessment_id = assessment_id or str(uuid4())
        command = self._assessment_command(RecordStep(
            assessment_id, instrument, administered, recorded_by, items, total, source))
        result, episode = self._execute(episode_id, expected_version, command)
        if result.replayed:
            result = self._earlier_result(episode, f"assessment:{assessment_id}")
        return replace(result, assessment=AssessmentView.of(episode.assessments[assessment_id]))

    def void_assessment(self, episode_id: UUID, assessment_id: str, *, reason: str,
                        recorded_by: str, expected_version: int | None = None) -> CommandResult:
        """Mark an assessment entered in error; returns the retractions and new assertions."""
        result, _ = self._execute(episode_id, expected_version, lambda episode: episode.void_assessment(
            assessment_id=assessment_id, reason=reason, recorded_by=recorded_by))
        return result

    def close_episode(self, episode_id: UUID, *, discharged_on: date, recorded_by: str,
                      expected_version: int | None = None) -> CommandResult:
        """Discharge; the result's ``outcome`` is the course outcome (NHS TT, CMS159) or None."""
        result, episode = self._execute(episode_id, expected_version, lambda episode: episode.close(
            discharged_on=discharged_on, recorded_by=recorded_by, now=self.clock()))
        return replace(result, outcome=course_outcome(episode.outcome))

    def adopt_criteria(self, episode_id: UUID, *, criteria: str, reason: str, recorded_by: str,
                       params: Mapping[str, Any] | None = None,
                       expected_version: int | None = None) -> CommandResult:
        """Adopt another criteria set for an episode (see Episode.adopt_criteria): the result
        lists the retractions and new decisions; ``replayed`` when the set was in force."""
        chosen = self.criteria_set(criteria, params)
        result, _ = self._execute(episode_id, expected_version, lambda episode: episode.adopt_criteria(
            criteria=chosen, reason=reason, recorded_by=recorded_by, now=self.clock()))
        return result

    # -- alerts (ADR 0031) ------------------------------------------------------------------

    def acknowledge_alert(self, episode_id: UUID, alert_id: str, *, action: str,
                          recorded_by: str, note: str = "",
                          expected_version: int | None = None) -> CommandResult:
        """Acknowledge an open alert with a coded ``action`` (domain.alerts.ACTIONS) and a
        ``note``; the result's ``alerts`` holds it as acknowledged. Raises
        EpisodeNotFoundError, AlertNotFoundError, AlertStateError (409: not open),
        InvalidInputError, VersionConflictError."""
        result, _ = self._execute(episode_id, expected_version, lambda episode: (
            episode.acknowledge_alert(alert_id=alert_id, action=action, note=note,
                                      recorded_by=recorded_by)))
        return result

    def resolve_alert(self, episode_id: UUID, alert_id: str, *, reason: str, recorded_by: str,
                      expected_version: int | None = None) -> CommandResult:
        """Resolve an open or acknowledged alert, giving the ``reason``. Raises
        EpisodeNotFoundError, AlertNotFoundError, AlertStateError (409: already resolved),
        InvalidInputError, VersionConflictError."""
        result, _ = self._execute(episode_id, expected_version, lambda episode: (
            episode.resolve_alert(alert_id=alert_id, reason=reason, recorded_by=recorded_by)))
        return result

    def record_support_review(self, episode_id: UUID, *, domains: Mapping[str, Any],
                              recorded_by: str, alert_id: str | None = None,
                              clinical_date: date | None = None,
                              expected_version: int | None = None) -> CommandResult:
        """Record a clinical support checklist (alliance, motivation, social_support,
        life_events: each ``{"rating": 1..5, "note"}``) on ``clinical_date`` (default today,
        UTC), after the alert ``alert_id`` if given; the result carries its ``review_id``.
        Raises EpisodeNotFoundError, EpisodeClosedError, AlertNotFoundError,
        InvalidInputError, FutureDateError, VersionConflictError."""
        now = self.clock()
        reviews: list[str] = []

        def command(episode: Episode) -> None:
            reviews.append(episode.record_support_review(
                alert_id=alert_id, clinical_date=clinical_date or now.date(),
                domains=dict(domains), recorded_by=recorded_by, now=now))
        result, _ = self._execute(episode_id, expected_version, command)
        return replace(result, review_id=reviews[-1])

    def flag_overdue(self, episode_id: UUID, *, recorded_by: str, today: date | None = None,
                     overdue_days: int = 28) -> CommandResult:
        """Raise an overdue alert when the episode has had no scorable assessment of its
        staged instrument for ``overdue_days`` days (unless its chosen overdue pack says
        otherwise) up to ``today`` (default: the clock's
        date) and none is unresolved (see Episode.flag_overdue); ``replayed`` when nothing
        was raised. Raises EpisodeNotFoundError, InvalidInputError (``overdue_days`` < 1)."""
        day = today or self.clock().date()
        result, _ = self._execute(episode_id, None, lambda episode: episode.flag_overdue(
            today=day, overdue_days=overdue_days, recorded_by=recorded_by))
        return result

    def watch_signals(self, episode_id: UUID, *,
                      packs: Sequence[RulePack | Mapping[str, Any]],
                      curve: RecoveryCurve | Mapping[str, Any] | None, reason: str,
                      recorded_by: str, expected_version: int | None = None) -> CommandResult:
        """Watch the episode with ``packs`` (RulePacks or their ``describe()``) and the
        clinic's ``curve`` (a RecoveryCurve, its ``describe()`` or None) from now on
        (SignalsWatched; see Episode.watch_signals): the result lists any off-track alert the
        new packs raise; ``replayed`` when exactly these watch it already. Raises
        EpisodeNotFoundError, EpisodeClosedError, InvalidInputError, VersionConflictError."""
        chosen = [p if isinstance(p, RulePack) else RulePack.from_description(p) for p in packs]
        fitted = (RecoveryCurve.from_description(curve) if isinstance(curve, Mapping)
                  else curve)
        result, _ = self._execute(episode_id, expected_version, lambda episode: (
            episode.watch_signals(packs=chosen, curve=fitted, reason=reason,
                                  recorded_by=recorded_by)))
        return result

    def alerts(self, episode_id: UUID) -> list[AlertView]:
        """Every alert of the episode, safety first, then off_track, then overdue, newest
        first within a kind. Read from the event store, so never behind a write. Raises
        EpisodeNotFoundError."""
        return alert_order(self.get_episode(episode_id).alerts.values())

    def register_criteria(self, *, criteria_id: str, base: str, params: Mapping[str, Any],
                          source: str, recorded_by: str) -> tuple[CriteriaSet, bool]:
        """Register a custom set derived from a built-in one, or a new version of it; returns
        (the latest version, whether anything was appended). Raises UnknownCriteriaError,
        InvalidCriteriaParameterError, InvalidInputError."""
        for _attempt in range(self.max_attempts):
            ident = CustomCriteria.id_for(criteria_id)
            if ident in self.repository:
                custom: CustomCriteria = self.repository.get(ident, projector_func=project_events)
                changed = custom.revise(base=base, params=params, source=source,
                                        recorded_by=recorded_by)
            else:
                custom, changed = CustomCriteria.register(
                    criteria_id=criteria_id, base=base, params=params, source=source,
                    recorded_by=recorded_by), True
            try:
                if changed:
                    self.save(custom)
                return custom.latest(), changed
            except IntegrityError:
                continue
        raise VersionConflictError(f"criteria {criteria_id} kept changing")

    # -- queries ----------------------------------------------------------------------------

    def clinic_signals(self, clinic_id: str) -> ClinicSignals | None:
        """The clinic's chosen rule packs and recorded fits (one read), or None when it has
        neither (its episodes are watched by the defaults)."""
        ident = ClinicSignals.id_for(clinic_id)
        try:
            found = self.repository.get(ident, projector_func=project_events)
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, ClinicSignals) else None

    def criteria_set(self, criteria_id: str,
                     params: Mapping[str, Any] | None = None) -> CriteriaSet:
        """A built-in or custom set (latest version), or its variant. Raises
        UnknownCriteriaError or InvalidCriteriaParameterError."""
        return get_criteria(criteria_id, params, custom=self._custom_latest)

    def criteria_versions(self, criteria_id: str) -> list[dict[str, Any]]:
        """Every version of a set: a built-in has one; a custom set its registrations, each with
        ``definition``, ``base``, ``params``, ``recorded_by``, ``recorded_at``. Raises
        UnknownCriteriaError."""
        if criteria_id in BUILTIN:
            return [{"definition": BUILTIN[criteria_id].describe(), "base": None, "params": {},
                     "recorded_by": None, "recorded_at": None}]
        ident = CustomCriteria.id_for(criteria_id)
        if ident not in self.repository:
            raise UnknownCriteriaError(f"unknown criteria set {criteria_id!r}", field="criteria")
        custom: CustomCriteria = self.repository.get(ident, projector_func=project_events)
        return custom.history()

    def custom_criteria(self) -> list[CriteriaSet]:
        """The latest version of every custom set, in registration order.

        The sets' ids are kept from one call to the next, and each call reads only the
        ``Registered`` events stored after the position the previous call read up to (the
        store has no index by topic: a scan of a 1.2 M-event store took 70 ms or more on every
        ``GET /criteria``). Another process's registrations are seen all the same: they are
        stored events past that position."""
        with self._custom_lock:
            top = self.recorder.max_notification_id() or 0
            if top > self._custom_read_to:
                for n in self.notifications(CustomCriteria.Registered.TOPIC,
                                            start=self._custom_read_to + 1, stop=top):
                    ident = UUID(str(n.originator_id))
                    if ident not in self._custom_ids:
                        self._custom_ids.append(ident)
                self._custom_read_to = top
            found = list(self._custom_ids)
        return [self.repository.get(ident, projector_func=project_events).latest()
                for ident in found]

    def notifications(self, topic: str, *, start: int = 1,
                      stop: int | None = None) -> Iterator[Notification]:
        """Every stored event of ``topic`` at positions ``start`` to ``stop`` (inclusive; None:
        to the end), in position order, as the recorder gives them (``Notification``: id,
        originator_id, originator_version, topic, state as stored), read in pages of 1,000."""
        while True:
            page = self.recorder.select_notifications(start=start, stop=stop, limit=1000,
                                                      topics=[topic])
            yield from page
            if len(page) < 1000:
                return
            start = page[-1].id + 1

    def _custom_latest(self, criteria_id: str) -> CriteriaSet | None:
        ident = CustomCriteria.id_for(criteria_id)
        if ident not in self.repository:
            return None
        custom: CustomCriteria = self.repository.get(ident, projector_func=project_events)
        return custom.latest()


    def is_erased(self, episode_id: UUID) -> bool:
        """Whether the episode was erased (its data key destroyed; application.erasure): it
        then answers as an unknown episode. False when the store is not encrypted."""
        return isinstance(self.mapper, KeyedMapper) and self.mapper.keys.episode_erased(
            str(episode_id))

    def get_episode(self, episode_id: UUID, version: int | None = None) -> Episode:
        """The episode (at ``version``, if given). Raises EpisodeNotFoundError (also for an
        erased episode)."""
        try:
            episode: object = None if self.is_erased(episode_id) else self.repository.get(
                episode_id, version=version, projector_func=project_events)
        except (AggregateNotFoundError, EventErased):
            episode = None
        if not isinstance(episode, Episode):
            raise EpisodeNotFoundError(f"no episode {episode_id}")
        if version is None and isinstance(self.snapshots, EpisodeSnapshots):
            self.snapshots.seen(episode.id, episode.version)
        return episode

    def clinic_of(self, episode_id: UUID) -> str | None:
        """The clinic of the episode ``episode_id``, from its first stored event (``Opened``),
        or None when no episode has this id: what the API checks against the caller's clinics
        before anything else. Reads one event, so it is never behind a write."""
        first = next(iter(self.repository.event_store.get(episode_id, lte=1)), None)
        if not isinstance(first, Episode.Opened) or self.is_erased(episode_id):
            return None
        return first.clinic_id

    def episode_events(self, episode_id: UUID) -> list[Episode.Event]:
        """Every stored event of the episode, in version order. Raises EpisodeNotFoundError
        (also for an erased episode)."""
        stored = [] if self.is_erased(episode_id) else list(
            self.repository.event_store.get(episode_id))
        events = [e for e in stored if isinstance(e, Episode.Event)]
        if not events or len(events) != len(stored):
            raise EpisodeNotFoundError(f"no episode {episode_id}")
        return events

    def assessments(self, episode_id: UUID) -> list[AssessmentView]:
        """Every assessment of the episode, voided ones included (marked, with the reason), in
        clinical order (see ``clinical_order``): what a chart of the episode needs. Read from
        the event store (the aggregate), so it is never behind a write. Raises
        EpisodeNotFoundError."""
        return clinical_order(self.get_episode(episode_id).assessments.values())

    def stage_history(self, episode_id: UUID, *, as_of: datetime | None = None,
                      include_retracted: bool = False) -> list[dict[str, Any]]:
        """Stage decisions as the record showed them at ``as_of`` (transaction time; default now),
        in clinical-date order. Retracted ones only with ``include_retracted`` (marked
        ``retracted`` with the retraction). Raises EpisodeNotFoundError."""
        asserted: dict[str, dict[str, Any]] = {}
        for event in self.episode_events(episode_id):
            if as_of is not None and event.timestamp > as_of:
                break
            if isinstance(event, Episode.StageEvent):
                asserted[event.stage_id] = {**StageDecisionView.of(event).as_json(),
                                            "retracted": None}
            elif isinstance(event, Episode.StageRetracted):
                asserted[event.stage_id]["retracted"] = Retraction.of(event).as_json()
        history = [e for e in asserted.values() if include_retracted or not e["retracted"]]
        return sorted(history, key=lambda e: (e["date"], e["recorded_at"]))

    # -- internals --------------------------------------------------------------------------

    def _execute(self, episode_id: UUID, expected_version: int | None,
                 command: Callable[[Episode], Any]) -> tuple[CommandResult, Episode]:
        with self._episode_locks[self._stripe(episode_id)]:
            return self._execute_unlocked(episode_id, expected_version, command)

    def _stripe(self, episode_id: UUID) -> int:
        """The index of the lock that serialises commands on ``episode_id`` in this process."""
        return hash(episode_id) % len(self._episode_locks)

    def _execute_unlocked(self, episode_id: UUID, expected_version: int | None,
                          command: Callable[[Episode], Any]) -> tuple[CommandResult, Episode]:
        for _attempt in range(self.max_attempts):
            episode = self.get_episode(episode_id)
            loaded = episode.version
            changed = command(episode)
            if changed is False:  # a repeated request: answered whatever If-Match it carries
                return CommandResult(episode.id, episode.version, None, episode.stage,
                                     replayed=True), episode
            if expected_version is not None and loaded != expected_version:
                raise VersionConflictError(
                    f"episode {episode_id} is at version {loaded}, not {expected_version}")
            try:
                recordings = self.save(episode)
            except IntegrityError:
                if expected_version is not None:
                    raise VersionConflictError(
                        f"episode {episode_id} changed while this command ran") from None
                continue
            events = [r.domain_event for r in recordings]
            return CommandResult(
                episode.id, episode.version, recordings[-1].notification.id if recordings
                else None, episode.stage, *_decisions(events),
                alerts=_alerts(episode, events)), episode
        raise VersionConflictError(
            f"episode {episode_id} kept changing; gave up after {self.max_attempts} attempts")

    def _earlier_result(self, episode: Episode, caused_by: str) -> CommandResult:
        events = [e for e in self.episode_events(episode.id)
                  if getattr(e, "caused_by", None) == caused_by]
        return CommandResult(episode.id, episode.version, None, episode.stage,
                             *_decisions(events), replayed=True)

    # -- batches (import; ADR 0026) ---------------------------------------------------------

    def _new_episode(self, *, episode_id: UUID, patient_ref: str, clinic_id: str,
                     recorded_by: str, criteria: str = "acnp2006",
                     params: Mapping[str, Any] | None = None, instrument: str = "PHQ-9",
                     opened_on: date | None = None) -> Episode:
        """open_episode's new Episode, not saved (one home for opening; same errors). When the
        clinic has chosen its rule packs (ClinicSignals), the episode is watched by them from
        its opening: SignalsWatched follows Opened, in the same save (ADR 0033)."""
        return self._opening(episode_id=episode_id, patient_ref=patient_ref,
                             clinic_id=clinic_id, recorded_by=recorded_by, criteria=criteria,
                             params=params, instrument=instrument, opened_on=opened_on)[0]

    def _opening(self, *, episode_id: UUID, patient_ref: str, clinic_id: str,
                 recorded_by: str, criteria: str = "acnp2006",
                 params: Mapping[str, Any] | None = None, instrument: str = "PHQ-9",
                 opened_on: date | None = None) -> tuple[Episode, int | None]:
        """_new_episode's episode and the version of the clinic's ClinicSignals it read (None:
        the clinic has none)."""
        now = self.clock()
        episode = Episode.open(
            episode_id=episode_id, patient_ref=patient_ref, clinic_id=clinic_id,
            criteria=self.criteria_set(criteria, params), instrument=instrument,
            opened_on=opened_on or now.date(), recorded_by=recorded_by, now=now)
        choice = self.clinic_signals(clinic_id)
        watching = choice.watching(episode.instrument) if choice is not None else None
        if choice is not None and watching is not None:
            episode.watch_signals(packs=watching[0], curve=watching[1],
                                  reason=f"the clinic's choice: {choice.reason}",
                                  recorded_by=recorded_by)
        return episode, choice.version if choice is not None else None

    def _assessment_command(self, step: RecordStep) -> Callable[[Episode], bool]:
        """record_assessment's command on an episode (one home for its validation, scoring and
        idempotency, shared by record_assessment and record_batch): False for a repeat."""

        def command(episode: Episode) -> bool:
            return episode.record_assessment(
                assessment_id=step.assessment_id, instrument=step.instrument,
                administered=step.administered, items=step.items, total=step.total,
                recorded_by=step.recorded_by, now=self.clock(), source=step.source)
        return command

    def record_batch(self, plans: Sequence[EpisodePlan]) -> list[PlanOutcome]:
        """Run the steps of several episodes (``application.batch``) and save every new event
        of the batch in ONE transaction (one ``save``, so one append and its hash-chain links;
        each event still encrypted with its patient's key): all of the batch is stored, or
        nothing. Each step runs as ``record_assessment`` / ``void_assessment`` would on the
        episode as left by the steps before it; a step that raises a DomainError stores nothing
        and its error is its result. A batch that loses a race with another writer
        (IntegrityError) is run again on fresh state, at most ``max_attempts`` times, then
        VersionConflictError. Returns one PlanOutcome per plan, in order. Raises ValueError for
        an episode named twice and a fatal step's error (after saving the steps before it).
        Callers bound the batch (transaction length and memory grow with it)."""
        ids = [plan.episode_id for plan in plans]
        if len(set(ids)) != len(ids):
            raise ValueError("an episode is named twice in one batch")
        stripes = sorted({self._stripe(i) for i in ids})
        with ExitStack() as held:  # in stripe order: two batches never wait on each other
            for stripe in stripes:
                held.enter_context(self._episode_locks[stripe])
            for _attempt in range(self.max_attempts):
                outcomes, episodes, fatal = self._run_plans(plans)
                counts = {episode.id: len(episode.pending_events) for episode in episodes}
                try:
                    recordings = self.save(*episodes) if episodes else []
                except IntegrityError:
                    continue
                _fill_positions(outcomes, counts, [r.notification.id for r in recordings])
                if fatal is not None:
                    raise fatal
                return outcomes
        raise VersionConflictError(
            f"a batch of {len(plans)} episodes kept changing; gave up after "
            f"{self.max_attempts} attempts")

    def _run_plans(self, plans: Sequence[EpisodePlan]) -> tuple[
            list[PlanOutcome], list[Episode], DomainError | None]:
        """One attempt of record_batch in memory: the outcomes, the episodes with pending
        events (in plan order) and the fatal error that ended the attempt, if any."""
        outcomes: list[PlanOutcome] = []
        episodes: list[Episode] = []
        for plan in plans:
            outcome = PlanOutcome(plan.episode_id)
            outcomes.append(outcome)
            try:
                episode = self._batch_episode(plan, outcome)
            except DomainError as exc:
                outcome.error = exc
                continue
            episodes.append(episode)
            for step in plan.steps(episode):
                before = episode.version
                try:
                    outcome.results.append(self._run_step(episode, step))
                except DomainError as exc:
                    if episode.version != before:  # events of the failed step: start over
                        episode = self._without_events_after(episode, before)
                        episodes[-1] = episode
                    if getattr(step, "fatal", False):
                        return outcomes, episodes, exc
                    outcome.results.append(exc)
        return outcomes, episodes, None

    def _batch_episode(self, plan: EpisodePlan, outcome: PlanOutcome) -> Episode:
        """The stored episode, else a new one opened from ``plan.opening`` (one read either
        way). Raises EpisodeNotFoundError for an erased episode or another aggregate, and
        EventErased while its key is being destroyed (as ``plan.episode_id in repository``)."""
        try:
            found = self.repository.get(plan.episode_id, projector_func=project_events)
        except AggregateNotFoundError:
            outcome.opened = True
            return self._new_episode(episode_id=plan.episode_id, **plan.opening)
        if not isinstance(found, Episode) or self.is_erased(plan.episode_id):
            raise EpisodeNotFoundError(f"no episode {plan.episode_id}")
        return found

    def _run_step(self, episode: Episode, step: Any) -> Any:
        """One step on ``episode``: a CommandResult (a replayed record), an _Unsaved one (its
        position is known after the save), or the caller's note as it is."""
        first = len(episode.pending_events)
        if isinstance(step, RecordStep):
            changed = self._assessment_command(step)(episode)
            view = AssessmentView.of(episode.assessments[step.assessment_id])
            if not changed:
                return CommandResult(episode.id, episode.version, None, episode.stage,
                                     assessment=view, replayed=True)
        elif isinstance(step, VoidStep):
            episode.void_assessment(assessment_id=step.assessment_id, reason=step.reason,
                                    recorded_by=step.recorded_by)
            view = None
        else:
            return step
        stage_events, retracted = _decisions(episode.pending_events[first:])
        return _Unsaved(len(episode.pending_events), partial(
            CommandResult, episode.id, episode.version, stage=episode.stage,
            stage_events=stage_events, retracted=retracted, assessment=view))

    def _without_events_after(self, episode: Episode, version: int) -> Episode:
        """``episode`` as it was at ``version``, its pending events up to there still pending
        (a failed step's events dropped): rebuilt from the store and those events."""
        pending = episode.collect_events()
        kept = [e for e in pending if e.originator_version <= version]
        stored = episode.version - len(pending)
        rebuilt = self.get_episode(episode.id, version=stored) if stored else None
        episode = project_events(rebuilt, kept)
        episode.pending_events.extend(kept)
        return episode


class _Unsaved(NamedTuple):
    """A step's CommandResult before its batch is saved: ``events``, its episode's pending
    events once it ran; ``make(position=...)`` the result."""

    events: int
    make: Callable[..., CommandResult]


def _fill_positions(outcomes: list[PlanOutcome], counts: Mapping[UUID, int],
                    positions: list[int]) -> None:
    """Turn each _Unsaved result of a saved batch into its CommandResult, with its last
    event's position. ``counts``: each saved episode's pending events; ``positions``: one per
    event saved, in plan order."""
    start = 0
    for outcome in outcomes:
        outcome.results = [
            r.make(position=positions[start + r.events - 1]) if isinstance(r, _Unsaved) else r
            for r in outcome.results]
        start += counts.get(outcome.episode_id, 0)


def _alerts(episode: Episode, events: Sequence[object]) -> tuple[AlertView, ...]:
    """The alerts that ``events`` raised or moved, as they stand in ``episode``, in order."""
    touched = dict.fromkeys(e.alert_id for e in events if isinstance(
        e, Episode.AlertRaised | Episode.AlertAcknowledged | Episode.AlertResolved))
    return tuple(AlertView.of(episode.alerts[i]) for i in touched)


def _decisions(events: Sequence[object]) -> tuple[tuple[StageDecisionView, ...],
                                                  tuple[Retraction, ...]]:
    """The decisions asserted and withdrawn among ``events``, in the order recorded."""
    return (tuple(StageDecisionView.of(e) for e in events if isinstance(e, Episode.StageEvent)),
            tuple(Retraction.of(e) for e in events if isinstance(e, Episode.StageRetracted)))
