"""Signed checkpoints: the three event stores' tree heads and the time, signed with Ed25519.

Format: a C2SP signed note (https://c2sp.org/signed-note) whose text is a C2SP tlog-checkpoint
(https://c2sp.org/tlog-checkpoint)::

    outcome-ledger/checkpoint          origin
    42                                 the outcomes store's tree size
    <base64 root>                      its RFC 6962 root
    store rescoring-runs 3 <base64>    extension lines: the other stores' size and root,
    store access-log 17 <base64>
    time 2026-12-01T14:00:00Z          and the UTC time
                                       (blank line)
    — outcome-ledger <base64(key hash (4 bytes) || Ed25519 signature)>

The key hash is the first 4 bytes of SHA-256(key name || 0x0A || 0x01 || public key), and the
signature covers the text up to and including its last newline (signed-note §Signatures,
algorithm 0x01 = Ed25519). The verifier key is printed as ``<name>+<hex key hash>+<base64(0x01
|| public key)>`` (``outcomes audit public-key``). Files are written mode 0600 in a 0700 folder,
one per checkpoint, named so that the newest sorts last.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from trust.chain import Chain, TreeHead
from trust.files import create_private, private_dir, write_new_private

ORIGIN = "outcome-ledger/checkpoint"
KEY_NAME = "outcome-ledger"
MAIN_STORE = "outcomes"
STORES = ("outcomes", "rescoring-runs", "access-log")
DASH = "\u2014"  # the em dash that starts a signature line
log = structlog.get_logger("checkpoints")


class BadSignature(ValueError):
    """The checkpoint is not a note signed by the given key (or not a checkpoint at all)."""


@dataclass(frozen=True)
class Checkpoint:
    """A parsed, signature-checked checkpoint: ``heads`` by store name (size, root; the
    last position is not in a checkpoint: 0), ``time`` UTC, ``text`` the whole signed note."""

    origin: str
    heads: dict[str, TreeHead]
    time: datetime
    text: str


# -- keys ------------------------------------------------------------------------------------------

def signing_key(settings: Any) -> Ed25519PrivateKey:
    """The Ed25519 signing key from ``settings.checkpoint_key_path()``, created (PEM, PKCS#8,
    mode 0600) on first use."""
    path: Path = settings.checkpoint_key_path()
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        # exclusive: when another process made the key first, its key is the one read below
        write_new_private(path, key.private_bytes(serialization.Encoding.PEM,
                                                  serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return loaded


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_hash(name: str, key: Ed25519PublicKey) -> bytes:
    """signed-note key hash: SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n\x01" + _raw_public(key)).digest()[:4]


def verifier_key(key: Ed25519PublicKey, name: str = KEY_NAME) -> str:
    """The signed-note verifier key text ``<name>+<hex key hash>+<base64(0x01 || key)>``."""
    encoded = base64.b64encode(b"\x01" + _raw_public(key)).decode()
    return f"{name}+{key_hash(name, key).hex()}+{encoded}"


def parse_verifier_key(text: str) -> tuple[str, Ed25519PublicKey]:
    """(name, public key) of a verifier key text; raises ValueError when malformed."""
    try:
        name, hash_hex, encoded = text.strip().split("+", 2)
        raw = base64.b64decode(encoded, validate=True)
        if raw[:1] != b"\x01" or len(raw) != 33:
            raise ValueError("not an Ed25519 verifier key")
        key = Ed25519PublicKey.from_public_bytes(raw[1:])
    except (ValueError, TypeError) as error:
        raise ValueError(f"not a signed-note verifier key: {error}") from None
    if key_hash(name, key).hex() != hash_hex:
        raise ValueError("the verifier key's hash does not match its key")
    return name, key


def public_key(settings: Any) -> str:
    """The verifier key of the settings' signing key (``outcomes audit public-key``)."""
    return verifier_key(signing_key(settings).public_key())


# -- notes -----------------------------------------------------------------------------------------

def heads_of(stores: Mapping[str, Any]) -> dict[str, TreeHead]:
    """The current tree head of each store (store name -> application or recorder)."""
    return {name: Chain.of(getattr(store, "recorder", store)).head()
            for name, store in stores.items()}


def stores_of(services: Any) -> dict[str, Any]:
    """The three event stores' applications of a ``bootstrap.Services`` (or a mapping)."""
    if isinstance(services, Mapping):
        return dict(services)
    return {"outcomes": services.app, "rescoring-runs": services.runs,
            "access-log": services.access_log}


def note_text(heads: Mapping[str, TreeHead], time: datetime) -> str:
    """The checkpoint body (before the signature): tlog-checkpoint lines."""
    main = heads[MAIN_STORE]
    lines = [ORIGIN, str(main.size), base64.b64encode(main.root).decode()]
    for name in STORES[1:]:
        if name in heads:
            lines.append(f"store {name} {heads[name].size} "
                         f"{base64.b64encode(heads[name].root).decode()}")
    lines.append(f"time {time.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}")
    return "\n".join(lines) + "\n"


def sign(body: str, key: Ed25519PrivateKey, name: str = KEY_NAME) -> str:
    """A signed note: ``body`` (ending in a newline), a blank line, one signature line."""
    signature = key.sign(body.encode())
    encoded = base64.b64encode(key_hash(name, key.public_key()) + signature).decode()
    return f"{body}\n{DASH} {name} {encoded}\n"


def parse(text: str, key: Ed25519PublicKey, name: str = KEY_NAME) -> Checkpoint:
    """Check the note's signature by ``key`` and parse its checkpoint; raises BadSignature."""
    body, sep, signatures = text.rpartition("\n\n")
    if not sep:
        raise BadSignature("not a signed note (no blank line before the signatures)")
    body += "\n"
    expected = key_hash(name, key)
    for line in signatures.splitlines():
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != DASH or parts[1] != name:
            continue
        try:
            raw = base64.b64decode(parts[2], validate=True)
        except ValueError:
            continue
        if raw[:4] != expected:
            continue
        try:
            key.verify(raw[4:], body.encode())
        except InvalidSignature:
            raise BadSignature("the checkpoint's signature does not verify with the key "
                               "(it was changed after signing)") from None
        return _checkpoint(body, text)
    raise BadSignature(f"the checkpoint carries no signature by key {name} "
                       f"{expected.hex()} (signed by another key?)")


def _checkpoint(body: str, text: str) -> Checkpoint:
    lines = body.rstrip("\n").split("\n")
    try:
        origin, size, root = lines[0], int(lines[1]), base64.b64decode(lines[2], validate=True)
        heads = {MAIN_STORE: TreeHead(size, root)}
        time = None
        for line in lines[3:]:
            parts = line.split(" ")
            if parts[0] == "store" and len(parts) == 4:
                heads[parts[1]] = TreeHead(int(parts[2]), base64.b64decode(parts[3], validate=True))
            elif parts[0] == "time" and len(parts) == 2:
                time = datetime.strptime(parts[1], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except (IndexError, ValueError) as error:
        raise BadSignature(f"signed, but not a checkpoint: {error}") from None
    if time is None:
        raise BadSignature("signed, but the checkpoint has no time line")
    return Checkpoint(origin, heads, time, text)


# -- files -----------------------------------------------------------------------------------------

def _file_name(time: datetime, size: int) -> str:
    return f"checkpoint-{time.strftime('%Y%m%dT%H%M%S%fZ')}-{size}.txt"


def write_checkpoint(settings: Any, services: Any, *,
                     now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Path:
    """Sign the stores' current heads and write a new checkpoint file (mode 0600) in
    ``settings.checkpoint_folder()`` (mode 0700); returns its path. ``services``: a
    ``bootstrap.Services`` or a mapping store name -> application. Raises NotChained for a
    store without a chain."""
    heads = heads_of(stores_of(services))
    time = now()
    text = sign(note_text(heads, time), signing_key(settings))
    path: Path = settings.checkpoint_folder() / _file_name(time, heads[MAIN_STORE].size)
    if not write_new_private(path, text.encode("utf-8")):
        raise FileExistsError(f"{path} exists already")
    return path


def latest_checkpoint(settings: Any) -> Path | None:
    """The newest checkpoint file in ``settings.checkpoint_folder()``, None when there is none."""
    folder: Path = settings.checkpoint_folder()
    if not folder.is_dir():
        return None
    found = sorted(folder.glob("checkpoint-*.txt"))
    return found[-1] if found else None


def read_checkpoint(path: Path, public_key: Ed25519PublicKey | str) -> Checkpoint:
    """The checkpoint in file ``path``, its signature checked with ``public_key`` (a key, or
    a verifier key text). Raises BadSignature (also for a file that is no checkpoint) and
    OSError when the file cannot be read."""
    if isinstance(public_key, str):
        name, key = parse_verifier_key(public_key)
    else:
        name, key = KEY_NAME, public_key
    return parse(path.read_text(encoding="utf-8"), key, name)


# -- the periodic writer of ``outcomes serve`` -----------------------------------------------------

@contextlib.contextmanager
def _writer_lock(folder: Path) -> Iterator[bool]:
    """The folder's writer lock (an flock on ``.writer.lock``), not waited for: yields False
    when another process holds it."""
    fd = os.open(create_private(folder / ".writer.lock"), os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def checkpoint_if_grown(settings: Any, services: Any) -> Path | None:
    """Write a checkpoint when some store's tree grew since the latest one (or there is none)
    and no other process is writing one; returns the new file or None."""
    folder = private_dir(settings.checkpoint_folder())
    with _writer_lock(folder) as held:
        if not held:
            return None
        heads = heads_of(stores_of(services))
        latest = latest_checkpoint(settings)
        if latest is not None:
            try:
                old = read_checkpoint(latest, signing_key(settings).public_key())
            except (BadSignature, OSError):
                old = None
            if old is not None and all(
                    heads[n].size <= old.heads.get(n, TreeHead(-1, b"")).size for n in heads):
                return None
        return write_checkpoint(settings, services)


def follow(settings: Any, services: Any) -> Callable[[], None]:
    """Write checkpoints every ``settings.checkpoint_interval`` seconds when a tree grew, in a
    daemon thread (one writer across workers: the folder's lock); returns the function that
    stops it (waits for the thread at most 10 s). Interval 0: nothing runs."""
    interval = float(settings.checkpoint_interval)
    stopped = threading.Event()
    if interval <= 0 or settings.store == "memory":
        return stopped.set

    def loop() -> None:
        while not stopped.wait(interval):
            try:
                path = checkpoint_if_grown(settings, services)
                if path is not None:
                    log.info("checkpoint written", path=str(path))
            except Exception as exc:  # keep going; the next interval retries
                log.error("checkpoint failed", error_type=type(exc).__name__)

    thread = threading.Thread(target=loop, name="checkpoints", daemon=True)
    thread.start()

    def stop() -> None:
        stopped.set()
        thread.join(timeout=10)
    return stop


# -- inclusion proofs (GET /audit/proof) -----------------------------------------------------------

class NotCheckpointed(LookupError):
    """The position is after the latest checkpoint's tree (or there is no checkpoint)."""


class CheckpointUnusable(LookupError):
    """The latest checkpoint does not verify, or the store no longer gives its root."""


@dataclass(frozen=True)
class Proof:
    """An event's RFC 6962 inclusion proof against the latest checkpoint's tree of its store."""

    store: str
    position: int
    leaf_index: int
    event_hash: bytes
    leaf_hash: bytes
    tree_size: int
    root: bytes
    proof: list[bytes]
    checkpoint: str


def prove(settings: Any, store: str, recorder: Any, position: int) -> Proof | None:
    """The inclusion proof of the event at ``position`` of ``store`` (its recorder) against the
    latest checkpoint; None when no event is chained at ``position``. Raises NotCheckpointed,
    CheckpointUnusable."""
    from trust import merkle
    from trust.chain import leaf_of

    chain = Chain.of(recorder)
    entry = chain.entry(position)
    if entry is None:
        return None
    latest = latest_checkpoint(settings)
    if latest is None:
        raise NotCheckpointed("no checkpoint has been written yet")
    try:
        checkpoint = read_checkpoint(latest, signing_key(settings).public_key())
    except (BadSignature, OSError) as exc:
        raise CheckpointUnusable(f"the latest checkpoint cannot be used: {exc}") from None
    head = checkpoint.heads.get(store)
    if head is None or entry.index >= head.size:
        raise NotCheckpointed(f"position {position} is after the latest checkpoint "
                              f"({head.size if head else 0} events of {store})")
    leaves = chain.leaves(head.size)
    if merkle.root(leaves) != head.root:
        raise CheckpointUnusable("the store no longer gives the latest checkpoint's root: run "
                                 "`outcomes audit verify`")
    return Proof(store, position, entry.index, entry.event_hash,
                 leaf_of(position, entry.event_hash), head.size, head.root,
                 merkle.inclusion_proof(leaves, entry.index), checkpoint.text)
