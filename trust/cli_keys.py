"""``outcomes patients erase`` and ``outcomes keys generate|rotate|status`` (ADR 0023).

Every refusal is one line on stderr and exit status 1; no key material is ever printed except
by ``keys generate``, whose whole output is a new key.
"""

from __future__ import annotations

import json
import secrets
from base64 import b64encode
from typing import Annotated, Any

import typer

patients_app = typer.Typer(no_args_is_help=True, pretty_exceptions_show_locals=False,
                           help="Patients: erasure (crypto-shredding).")
keys_app = typer.Typer(no_args_is_help=True, pretty_exceptions_show_locals=False,
                       help="The master key and the data keys.")


def _refuse(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)


def _settings() -> Any:
    from bootstrap import Settings

    return Settings()


@patients_app.command("erase")
def patients_erase(
    patient_ref: Annotated[str, typer.Argument(help="The pseudonymous patient_ref to erase.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the record and the erasure log; "
                                             "no personal data).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Erase one patient: destroy their data keys (their events then read as erased), record
    ErasureCompleted, drop their episodes from every read model and shadow-run result, log the
    erasure. Needs OUTCOMES_CIPHER_KEY. Erasing again says already erased."""
    from application.erasure import (
        ErasureRefused,
        UnknownPatientError,
        erase_patient,
        result_json,
    )
    from bootstrap import StartupError, build
    from cli import cli_user

    try:
        settings = _settings()
        if settings.master_key() is None:
            _refuse("OUTCOMES_CIPHER_KEY is not set: events are not encrypted, there is no key "
                    "to destroy (nothing to shred)")
        services = build(settings)
    except StartupError as exc:
        _refuse(str(exc))
    try:
        result = erase_patient(services, patient_ref, reason, cli_user(),
                               erasure_log=settings.erasure_log_path())
        if settings.projection_mode() == "inline":  # else the runners drop the rows
            services.read_models.catch_up()
    except (ErasureRefused, UnknownPatientError) as exc:
        _refuse(str(exc))
    finally:
        services.close()
    if as_json:
        typer.echo(json.dumps(result_json(result), indent=1))
        return
    if result.already_erased:
        typer.echo("already erased: nothing left to erase for this patient_ref")
        return
    typer.echo(f"erased: {len(result.episode_ids)} episode(s), {result.destroyed} key(s) "
               f"destroyed; ErasureCompleted at position {result.position}")
    if result.readable_events:
        typer.echo(f"note: {result.readable_events} event(s) of this patient were stored before "
                   "encryption was on and stay readable in the event store (events are never "
                   "edited); they are dropped from every read model")


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new master key (base64 of 32 random bytes) for OUTCOMES_CIPHER_KEY."""
    typer.echo(b64encode(secrets.token_bytes(32)).decode())


def _key_tables(settings: Any) -> list[tuple[str, Any]]:
    from bootstrap import EVENT_STORES, StartupError, key_refusals
    from trust.cipher import KeyedMapper

    opened = []
    try:
        for name, app_class in EVENT_STORES.items():
            with key_refusals():
                app = app_class(settings.eventsourcing_env(name))
            opened.append((name, app))
            if not isinstance(app.mapper, KeyedMapper):
                raise StartupError("OUTCOMES_CIPHER_KEY is not set: there are no keys")
    except BaseException:
        for _, app in opened:
            app.close()
        raise
    return opened


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Re-wrap every data key (and the patient-index key) of each event store from
    OUTCOMES_CIPHER_KEY to OUTCOMES_NEW_CIPHER_KEY, one transaction per store; events are not
    touched. Then run everything with the new key as OUTCOMES_CIPHER_KEY."""
    from bootstrap import StartupError

    try:
        settings = _settings()
        new = settings.master_key(new=True)
        if new is None:
            _refuse("OUTCOMES_NEW_CIPHER_KEY is not set (`outcomes keys generate` prints one)")
        if settings.store == "memory":
            _refuse("OUTCOMES_STORE=memory keeps no keys between runs: nothing to rotate")
        opened = _key_tables(settings)
    except StartupError as exc:
        _refuse(str(exc))
    from trust.keys import check_id

    try:
        for name, app in opened:
            count = app.mapper.keys.rotate(new)
            typer.echo(f"{name}: {count} key(s) re-wrapped; master key check id now "
                       f"{check_id(new)}")
    finally:
        for _, app in opened:
            app.close()
    typer.echo("set OUTCOMES_CIPHER_KEY to the new key (and unset OUTCOMES_NEW_CIPHER_KEY) "
               "before the next start; restart every process")


@keys_app.command("status")
def keys_status() -> None:
    """Per event store: patient keys, how many are erased, and the master key's check id (no
    secret is printed)."""
    from bootstrap import StartupError

    try:
        opened = _key_tables(_settings())
    except StartupError as exc:
        _refuse(str(exc))
    try:
        for name, app in opened:
            status = app.mapper.keys.status()
            typer.echo(f"{name}: {status.patient_keys} patient key(s), {status.erased} erased; "
                       f"master key check id {status.check_id}")
    finally:
        for _, app in opened:
            app.close()
