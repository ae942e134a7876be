"""``outcomes backup DEST`` and ``outcomes restore SRC [--force]`` (registered at the top level
of ``cli.py``; ``trust.backup``, ``trust.restore``, ADR 0024). A refusal is one line on stderr
(exit 1); a restored copy that does not verify prints each fault as ``outcomes audit verify``
does (exit 1)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer


def _settings() -> Any:
    from bootstrap import Settings, StartupError

    try:
        settings = Settings()
        settings.eventsourcing_env()  # a malformed master key is one line here
    except (ValueError, StartupError) as exc:
        typer.echo(f"error: {str(exc).splitlines()[0]}", err=True)
        raise typer.Exit(code=1) from None
    return settings


def _size(total: int) -> str:
    return f"{total / 1e6:.1f} MB" if total >= 100_000 else f"{total / 1e3:.1f} kB"


def backup_command(
    dest: Annotated[Path, typer.Argument(help="A new folder for the copy (created, mode 0700).")],
) -> None:
    """Copy the event stores (events, hash chain, key tables) and the shadow-run results into
    the new folder DEST while the service keeps running, with manifest.json (positions, chain
    roots, the latest checkpoint, SHA-256 of every file). Read models are not copied (restore
    rebuilds them); keys are never copied: back them up separately (see the manifest's note).
    SQLite: SQLite's online backup API; PostgreSQL: pg_dump (same major version as the server,
    or newer) with the OUTCOMES_POSTGRES_* settings passed in its environment."""
    from trust.backup import BackupError, backup

    settings = _settings()
    try:
        result = backup(settings, dest)
    except BackupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    manifest = result.manifest
    files = manifest["files"]
    typer.echo(f"backup of the {settings.store} store written to {dest} ({len(files)} files, "
               f"{_size(sum(f['bytes'] for f in files.values()))}, {result.seconds:.1f} s)")
    for name, head in manifest["event_stores"].items():
        typer.echo(f"  {name}: {head['events']} events, last position {head['last_position']}, "
                   f"tree size {head['tree_size']} root {head['root']}")
    none = "none (write one with `outcomes audit checkpoint`)"
    typer.echo(f"  checkpoint: {manifest['checkpoint'] or none}")
    typer.echo(f"note: {manifest['keys']}")


def restore_command(
    src: Annotated[Path, typer.Argument(help="A folder written by `outcomes backup`.")],
    force: Annotated[bool, typer.Option(
        "--force", help="Replace a store that holds events (default: refuse).")] = False,
    public_key: Annotated[str | None, typer.Option(
        "--public-key", help="The checkpoints' verifier key (`outcomes audit public-key`); "
                             "default: the configured signing key's.")] = None,
) -> None:
    """Restore a backup into the configured store, verified before anything is served: the
    files' SHA-256 against the manifest, then `outcomes audit verify` on the restored copy
    against the backup's checkpoint (a fault refuses: on SQLite the previous store is left in
    place). Then every read model is rebuilt and the erasure log re-applied, so patients erased
    after the backup stay erased. Stop `outcomes serve` and the runners first."""
    from rich.console import Console
    from rich.progress import Progress

    from trust.backup import BackupError
    from trust.restore import RestoreRefused, restore

    settings = _settings()
    with Progress(transient=True, console=Console(stderr=True)) as bar:  # stdout: the summary
        tasks: dict[str, Any] = {}

        def progress(name: str, position: int, last: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(f"rebuilding {name}", total=None)
            bar.update(tasks[name], completed=position, total=last)

        try:
            result = restore(settings, src, force=force, public_key=public_key,
                             progress=progress)
        except RestoreRefused as exc:
            for fault in exc.faults:
                where = "" if fault.position is None else f" position {fault.position}"
                typer.echo(f"FAULT {fault.kind} at {fault.store}{where}: {fault.detail}")
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=1) from None
        except BackupError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=1) from None
    manifest, report = result.manifest, result.report
    typer.echo(f"restored the {settings.store} store from {src} (backup of "
               f"{manifest['created_at']}, {result.seconds:.1f} s)")
    for name, head in report.heads.items():
        typer.echo(f"verified: {name} size {head.size} root {head.root.hex()}")
    typer.echo(f"checkpoint: {report.checkpoint.name if report.checkpoint else 'none in the backup'}")
    for name, count in result.rebuilt.items():
        typer.echo(f"rebuilt: {name} ({count} events)")
    redone = [r for r in result.erasures if r.destroyed or r.position is not None]
    typer.echo(f"erasures re-applied: {len(redone)} of {len(result.erasures)} in the log")
