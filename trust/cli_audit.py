"""``outcomes audit``: checkpoint (sign the stores' tree heads now), verify (recompute the chains
and trees, compare with a checkpoint and the read models), public-key (the verifier key)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from bootstrap import Settings

audit_app = typer.Typer(no_args_is_help=True,
                        help="Tamper evidence: signed checkpoints and verification.")


def _settings() -> Settings:
    from bootstrap import Settings

    try:
        return Settings()
    except ValueError as exc:
        typer.echo(f"error: {str(exc).splitlines()[0]}", err=True)
        raise typer.Exit(code=2) from None


@audit_app.command("checkpoint")
def checkpoint() -> None:
    """Sign the three event stores' tree sizes and roots with the checkpoint key and write them
    to a new file in OUTCOMES_CHECKPOINT_DIR (default var/checkpoints); prints the checkpoint
    and its path. Deposit a copy elsewhere: it is what a truncation is detected against."""
    from bootstrap import StartupError, build
    from trust.checkpoints import write_checkpoint

    settings = _settings()
    if settings.store == "memory":
        typer.echo("error: the memory store is lost when this command exits; nothing to "
                   "checkpoint (OUTCOMES_STORE=memory)", err=True)
        raise typer.Exit(code=2)
    try:
        services = build(settings)
    except StartupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    try:
        path = write_checkpoint(settings, services)
    finally:
        services.close()
    typer.echo(path.read_text(encoding="utf-8"), nl=False)
    typer.echo(f"written to {path}")


@audit_app.command("verify")
def verify(
    checkpoint: Annotated[Path | None, typer.Option(
        "--checkpoint", help="Checkpoint file (default: the latest in OUTCOMES_CHECKPOINT_DIR).",
        exists=True, dir_okay=False)] = None,
    deep: Annotated[bool, typer.Option(
        "--deep", help="Compare every episode's read-model rows (default: a sample).")] = False,
    public_key: Annotated[str | None, typer.Option(
        "--public-key", help="Verifier key (`outcomes audit public-key`; default: the "
                             "signing key's).")] = None,
) -> None:
    """Recompute every event store's hash chain and Merkle tree and compare them with the
    checkpoint and the read models. Exit 0 prints each store's size and root; exit 1 prints
    each fault, first bad position first. Needs no master key; reads only."""
    from trust.verify import VerifyError
    from trust.verify import verify as run_verify

    settings = _settings()
    try:
        report = run_verify(settings, checkpoint=checkpoint, deep=deep, public_key=public_key)
    except (VerifyError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    for note in report.notes:
        typer.echo(f"note: {note}", err=True)
    if report.checkpoint is not None:
        typer.echo(f"checkpoint: {report.checkpoint}")
    if not report.ok:
        for fault in report.faults:
            where = f" position {fault.position}" if fault.position is not None else ""
            typer.echo(f"FAULT {fault.kind} at {fault.store}{where}: {fault.detail}")
        raise typer.Exit(code=1)
    for store, head in report.heads.items():
        typer.echo(f"verified: {store} size {head.size} root {head.root.hex()}")


@audit_app.command("public-key")
def public_key() -> None:
    """Print the checkpoints' verifier key (signed-note format: name+hash+base64 key), for an
    auditor who checks checkpoints without the private key (``verify --public-key``)."""
    from trust.checkpoints import public_key as verifier

    typer.echo(verifier(_settings()))
