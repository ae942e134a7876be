"""``outcomes audit verify``: recompute every store's chain and tree, compare them with a signed
checkpoint, and the read models with the events.

Fault kinds (``Fault.kind``): "edited" (the event at a position is not the one chained there),
"deleted" (a chained event is gone), "inserted" (an event nobody chained), "reordered" (the
event chained at one position now stands at another), "truncated" (the store holds fewer events
than a checkpoint covered, or its last chained events are gone), "checkpoint-mismatch" (the
first ``size`` leaves do not give the checkpoint's root), "bad-signature" (the checkpoint is
not signed by the key), "read-model" (a view's rows disagree with the events, or an episode
snapshot, derived data like a view, differs from a replay of its events: ADR 0025). Faults of the
stored history come first bad position first, then the read models'. The chain covers the
stored bytes (ciphertext when encrypted), so the chain and checkpoint checks never need the
master key; the read models are compared only where the events can be decoded (a note says
when they could not). Only read transactions.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from trust import merkle
from trust.chain import GENESIS, Chain, TreeHead, content_digest, event_hash, leaf_of
from trust.checkpoints import BadSignature, Checkpoint, read_checkpoint, verifier_key

KINDS = ("edited", "deleted", "inserted", "reordered", "truncated", "checkpoint-mismatch",
         "bad-signature", "read-model")
SAMPLE = 20  # episodes (access records: 2x) compared per read model without --deep


@dataclass(frozen=True)
class Fault:
    """One finding: the store, the first position concerned (None when it is not one
    position: a bad signature, a root mismatch), the kind (``KINDS``) and what was seen."""

    store: str
    position: int | None
    kind: str
    detail: str


@dataclass
class VerifyReport:
    """``ok`` when no fault was found; ``heads`` each store's recomputed tree head;
    ``checkpoint`` the file compared against (None: none found or given); ``notes`` what was
    not checked and why."""

    ok: bool
    heads: dict[str, TreeHead]
    faults: list[Fault]
    checkpoint: Path | None
    notes: list[str] = field(default_factory=list)


class VerifyError(RuntimeError):
    """Verification could not run (a store without a chain table, an unreadable key)."""


# -- the chain ------------------------------------------------------------------------------------

def check_chain(store: str, chain: Chain) -> tuple[list[Fault], TreeHead, list[bytes]]:
    """Recompute one store's chain against its events: (faults, tree head, leaf hashes). The
    tree is the stored links' (what checkpoints signed); each link is recomputed from the
    event now at its position and the previous link's stored hash, so one edit is one fault."""
    # Events first, then links: an append committed between the two reads has its link but
    # not its event in hand, so the events after the first read's last are read once more (an
    # event appended after the links were read is left out: its link was not read).
    events = {e.position: e for e in chain.events()}
    links = list(chain.links())
    top = max(events, default=0)
    if links and links[-1].position > top:
        events.update((e.position, e) for e in chain.events(after=top)
                      if e.position <= links[-1].position)
    linked = {k.position for k in links}
    chained_at = {k.content_digest: k.position for k in links}
    faults: list[Fault] = []
    explained: set[int] = set()
    prev_position, prev_hash = 0, GENESIS
    missing: list[int] = []
    for link in links:
        broken = link.prev_position != prev_position
        if broken:
            gone = link.prev_position if link.prev_position not in linked else link.position
            faults.append(Fault(store, gone, "deleted",
                                f"the link at position {link.position} follows position "
                                f"{link.prev_position}, whose link is gone"))
            explained.add(gone)
        event = events.get(link.position)
        if event is None:
            missing.append(link.position)
        else:
            digest = content_digest(event.originator_id, event.originator_version, event.topic,
                                    event.state)
            # after a removed link the previous hash is gone: the content digest still checks
            expected = link.event_hash if broken else event_hash(
                prev_hash, link.position, link.prev_position, event.originator_id,
                event.originator_version, event.topic, event.state)
            if expected != link.event_hash or digest != link.content_digest:
                faults.append(_mismatch(store, link.position, prev_position, digest,
                                        link.content_digest, chained_at))
        prev_position, prev_hash = link.position, link.event_hash
    last_event = max(events, default=0)
    for position in missing:
        if position > last_event:
            faults.append(Fault(store, position, "truncated",
                                "the chained events from here on are gone"))
            break
        faults.append(Fault(store, position, "deleted", "the event chained here is gone"))
    for position in sorted(set(events) - linked - explained):
        faults.append(Fault(store, position, "inserted",
                            "an event that was never chained (written outside the application)"))
    leaves = [leaf_of(k.position, k.event_hash) for k in links]
    head = TreeHead(len(leaves), merkle.root(leaves), links[-1].position if links else 0)
    return faults, head, leaves


def _mismatch(store: str, position: int, prev_position: int, digest: bytes, chained: bytes,
              chained_at: Mapping[bytes, int]) -> Fault:
    if digest == chained:  # the event is the one chained here: the previous link was rewritten
        return Fault(store, prev_position, "edited",
                     f"the chain link of position {prev_position} was rewritten")
    origin = chained_at.get(digest)
    if origin is not None and origin != position:
        return Fault(store, position, "reordered",
                     f"holds the event chained at position {origin}")
    return Fault(store, position, "edited", "the stored event differs from the one chained")


def check_checkpoint(checkpoint: Checkpoint, heads: Mapping[str, TreeHead],
                     leaves: Mapping[str, list[bytes]]) -> list[Fault]:
    """Each store's tree against the checkpoint's head: fewer events than its size is
    "truncated" (position: the one after the last left), a different root over its first
    ``size`` leaves "checkpoint-mismatch"."""
    faults = []
    for store, signed in checkpoint.heads.items():
        if store not in heads:
            continue
        now = heads[store]
        if now.size < signed.size:
            faults.append(Fault(store, now.last_position + 1, "truncated",
                                f"{now.size} events, the checkpoint of "
                                f"{checkpoint.time:%Y-%m-%dT%H:%M:%SZ} covered {signed.size}"))
        elif merkle.root(leaves[store][:signed.size]) != signed.root:
            faults.append(Fault(store, None, "checkpoint-mismatch",
                                f"the first {signed.size} events do not give the checkpoint's "
                                f"root {signed.root.hex()}"))
    return faults


# -- the read models ------------------------------------------------------------------------------

def check_read_models(store: str, app: Any, models: Any, *, deep: bool,
                      rng: random.Random) -> tuple[list[Fault], list[str]]:
    """Rebuild each read model of ``models`` (``projections.runner.ReadModels``) in memory from
    the events up to its tracked position (all episodes with ``deep``, else a sample) and
    compare its rows with the live view's: a "read-model" fault per episode (access log: per
    record) whose rows differ, naming the view. Returns (faults, notes)."""
    from projections.errors import ViewUnavailable
    from projections.runner import open_view

    faults: list[Fault] = []
    notes: list[str] = []
    for name, view_class in models.classes.items():
        try:
            live = models.view(name)
        except ViewUnavailable as refused:
            faults.append(Fault(store, None, "read-model", f"view {name}: {refused}"))
            continue
        upto = live.position(app.name)
        key = "position" if name == "access-log" else "episode_id"
        notifications = _notifications(app, live.topics, upto)
        first_at: dict[str, int] = {}
        for n in notifications:
            first_at.setdefault(str(n.originator_id) if key == "episode_id" else str(n.id), n.id)
        episodes = {str(n.originator_id) for n in notifications
                    if n.topic.endswith(".Opened")} if key == "episode_id" else set(first_at)
        chosen = sorted(episodes) if deep else sorted(rng.sample(sorted(episodes),
                                                                min(len(episodes), SAMPLE)))
        wanted = set(chosen)
        reference = open_view(view_class, None)
        try:
            batch = []
            for n in notifications:
                ident = str(n.originator_id) if key == "episode_id" else str(n.id)
                if ident in wanted or (key == "episode_id" and ident not in episodes):
                    try:
                        batch.append((app.mapper.to_domain_event(n), n.id))
                    except Exception as exc:
                        notes.append(f"{store}: view {name} not compared: the events cannot "
                                     f"be decoded here ({type(exc).__name__})")
                        batch = []
                        break
                if len(batch) >= 500:
                    reference.process(app.name, batch)
                    batch = []
            else:
                reference.process(app.name, batch)
                faults += _compare(store, name, key, live, reference, chosen, first_at, deep)
        finally:
            reference.datastore.close()
    return faults, notes


def check_snapshots(store: str, app: Any, *, deep: bool,
                    rng: random.Random) -> tuple[list[Fault], list[str]]:
    """Each stored snapshot of a sample of episodes (all with ``deep``) against a replay of the
    episode's events up to the snapshot's version (ADR 0025): a "read-model" fault per episode
    whose snapshot differs or cannot be decoded (the reads skip such a snapshot, but it was
    changed outside the application). Erased episodes, snapshots of another
    ``Episode.class_version`` (ignored by the reads) and events that cannot be decoded here
    are left out. Returns (faults, notes)."""
    from application.outcomes import project_events
    from domain.episode import Episode
    from trust.cipher import ErasedEvent, EventErased

    snapshots = getattr(app, "snapshots", None)
    if snapshots is None:
        return [], []
    opened = _notifications(app, [Episode.Opened.TOPIC], app.recorder.max_notification_id() or 0)
    first_at = {str(n.originator_id): n.id for n in opened}
    chosen = sorted(first_at) if deep else sorted(
        rng.sample(sorted(first_at), min(len(first_at), SAMPLE)))
    faults: list[Fault] = []
    notes: list[str] = []
    for ident in chosen:
        episode_id = UUID(ident)
        try:
            rows = snapshots.recorder.select_events(episode_id)
        except Exception as exc:  # an older store opened without creating tables
            return faults, [f"{store}: snapshots not compared ({type(exc).__name__})"]
        for row in rows:
            try:
                replay = project_events(None, app.events.get(episode_id,
                                                             lte=row.originator_version))
            except EventErased:
                break
            except Exception as exc:
                notes.append(f"{store}: snapshots not compared: the events cannot be decoded "
                             f"here ({type(exc).__name__})")
                return faults, notes
            try:
                snapshot = app.mapper.to_domain_event(row)
                if isinstance(snapshot, ErasedEvent) or (
                        snapshot.state.get("class_version") != Episode.class_version):
                    continue
                same = _state(snapshot.mutate(None)) == _state(replay)
            except Exception:
                same = False
            if not same:
                faults.append(Fault(store, first_at[ident], "read-model",
                                    f"snapshots: the snapshot of episode {ident} at version "
                                    f"{row.originator_version} differs from its events"))
                break
    return faults, notes


def _state(aggregate: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}


def _notifications(app: Any, topics: Iterable[str], upto: int) -> list[Any]:
    found: list[Any] = []
    after = 0
    while after < upto:
        page = app.recorder.select_notifications(start=after, stop=upto, limit=1000,
                                                 topics=list(topics), inclusive_of_start=False)
        if not page:
            break
        found.extend(page)
        after = page[-1].id
    return found


def _rows(view: Any, table: str, key: str, chosen: list[str], deep: bool) -> dict[str, list[Any]]:
    by_key: dict[str, list[Any]] = {}
    with view.reading() as cursor:
        if deep:
            cursor.execute(f"SELECT * FROM {table}")
        else:
            if not chosen:
                return by_key
            cast = [int(c) for c in chosen] if key == "position" else chosen
            cursor.execute(f"SELECT * FROM {table} WHERE {key} IN "
                           f"({', '.join('?' * len(chosen))})", cast)
        for row in cursor.fetchall():
            values = dict(row)
            by_key.setdefault(str(values[key]), []).append(
                tuple(sorted((k, _plain(v)) for k, v in values.items())))
    return {k: sorted(v) for k, v in by_key.items()}


def _plain(value: Any) -> Any:
    return bytes(value) if isinstance(value, memoryview) else value


def _compare(store: str, name: str, key: str, live: Any, reference: Any, chosen: list[str],
             first_at: Mapping[str, int], deep: bool) -> list[Fault]:
    bad: dict[str, str] = {}
    for table in reference.table_names():
        expected = _rows(reference, table, key, chosen, deep)
        found = _rows(live, table, key, chosen, deep)
        for ident in sorted(set(expected) | set(found)):
            if expected.get(ident) != found.get(ident) and ident not in bad:
                bad[ident] = table
    faults = []
    for ident, table in bad.items():
        position = first_at.get(ident) or (int(ident) if key == "position" else None)
        what = "record" if key == "position" else "episode"
        faults.append(Fault(store, position, "read-model",
                            f"view {name}, table {table}: the rows of {what} {ident} differ "
                            "from the events"))
    return faults


# -- the whole ------------------------------------------------------------------------------------

def _verifying_key(settings: Any, public_key: str | None) -> str | None:
    if public_key is not None:
        return public_key
    path: Path = settings.checkpoint_key_path()
    if not path.exists():
        return None
    from trust.checkpoints import signing_key
    return verifier_key(signing_key(settings).public_key())


def open_stores(settings: Any) -> dict[str, Any]:
    """The three event stores' applications, opened without creating anything (close them).
    Raises VerifyError for a SQLite store whose file does not exist."""
    from bootstrap import EVENT_STORES

    opened: dict[str, Any] = {}
    try:
        for name, app_class in EVENT_STORES.items():
            env = settings.eventsourcing_env(name)
            if settings.store == "sqlite" and not Path(env["SQLITE_DBNAME"]).exists():
                raise VerifyError(f"the {name} store {env['SQLITE_DBNAME']} does not exist")
            opened[name] = app_class({**env, "CREATE_TABLE": "n"})
    except BaseException:
        for app in opened.values():
            app.close()
        raise
    return opened


def verify(settings: Any, *, checkpoint: Path | None = None, deep: bool = False,
           public_key: str | None = None, services: Any = None,
           seed: int | None = None) -> VerifyReport:
    """Verify every event store of ``settings`` (``services``: already open ones, e.g. the
    in-memory store of a running process) against ``checkpoint`` (default: the latest in
    ``settings.checkpoint_folder()``; its signature checked with ``public_key``, a verifier
    key text, default the settings' signing key) and the read models (a sample of episodes,
    all with ``deep``). Raises VerifyError when a store cannot be read as chained."""
    from trust.chain import NotChained
    from trust.checkpoints import latest_checkpoint, stores_of

    own = services is None
    stores = open_stores(settings) if own else stores_of(services)
    faults: list[Fault] = []
    notes: list[str] = []
    heads: dict[str, TreeHead] = {}
    leaves: dict[str, list[bytes]] = {}
    try:
        for name, app in stores.items():
            try:
                found, heads[name], leaves[name] = check_chain(name, Chain.of(app.recorder))
            except NotChained as exc:
                raise VerifyError(f"the {name} store keeps no chain: {exc}") from None
            except Exception as exc:
                if "chain" in str(exc) or "does not exist" in str(exc):
                    raise VerifyError(f"the {name} store has no chain table yet: run "
                                      "`outcomes db init`") from None
                raise
            faults += found
        path = checkpoint if checkpoint is not None else latest_checkpoint(settings)
        if path is not None:
            key = _verifying_key(settings, public_key)
            try:
                if key is None:
                    raise BadSignature("no verifier key: the signing key file is missing "
                                       "(give --public-key)")
                faults += check_checkpoint(read_checkpoint(path, key), heads, leaves)
            except BadSignature as exc:
                faults.append(Fault("checkpoint", None, "bad-signature", f"{path.name}: {exc}"))
        else:
            notes.append("no checkpoint: a truncated tail cannot be detected "
                         "(write one with `outcomes audit checkpoint`)")
        faults += _read_model_faults(settings, stores, services, deep, notes, seed)
        found, said = check_snapshots("outcomes", stores["outcomes"], deep=deep,
                                      rng=random.Random(seed))
        faults += found
        notes += said
    finally:
        if own:
            for app in stores.values():
                app.close()
    # the stored history's faults first bad position first, then the read models' (which an
    # edit of the events also causes: the views were built from the events before it)
    faults.sort(key=lambda f: (f.kind == "read-model", f.position is None, f.position or 0,
                               f.store))
    return VerifyReport(not faults, heads, faults, path, notes)


def _read_model_faults(settings: Any, stores: Mapping[str, Any], services: Any, deep: bool,
                       notes: list[str], seed: int | None) -> list[Fault]:
    from projections.runner import ReadModels

    rng = random.Random(seed)
    faults: list[Fault] = []
    pairs = [("outcomes", "read_models"), ("access-log", "access_views")]
    for store, attribute in pairs:
        app = stores[store]
        if services is not None and hasattr(services, attribute):
            models = getattr(services, attribute)
            found, said = check_read_models(store, app, models, deep=deep, rng=rng)
        else:
            try:
                models = ReadModels.open(app, settings.view_store(), create=False)
            except Exception as exc:  # no read models yet (never served), or unreachable
                notes.append(f"{store}: read models not compared: they cannot be opened "
                             f"({type(exc).__name__})")
                continue
            try:
                found, said = check_read_models(store, app, models, deep=deep, rng=rng)
            except Exception as exc:
                found, said = [], [f"{store}: read models not compared ({type(exc).__name__})"]
            finally:
                models.close()
        faults += found
        notes += said
    return faults
