"""The ``outcomes`` command line: evaluate, criteria, serve, db, dev-token, projections, import,
rescore, adopt, signals, audit, patients erase, keys, backup, restore. Commands that write record
``cli:<os user>`` as ``recorded_by``."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from domain.criteria.builtin import BUILTIN, get_criteria, parse_overrides, split_criteria_id
from domain.criteria.sets import CriteriaSet
from domain.errors import DomainError, UnknownCriteriaError
from domain.trajectory import TrajectoryError, parse_trajectory, render
from domain.trajectory import evaluate as evaluate_trajectory
from trust.cli_audit import audit_app
from trust.cli_backup import backup_command, restore_command
from trust.cli_keys import keys_app, patients_app

if TYPE_CHECKING:
    from importers.pipeline import ImportSummary

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_show_locals=False,
                  help="Outcome Ledger: stage treatment outcomes under versioned criteria sets.")
criteria_app = typer.Typer(no_args_is_help=True, help="The criteria sets this engine knows.")
app.add_typer(criteria_app, name="criteria")
projections_app = typer.Typer(no_args_is_help=True, help="The read models (projections).")
app.add_typer(projections_app, name="projections")
import_app = typer.Typer(no_args_is_help=True, help="Import assessments from FHIR or CSV files.")
db_app = typer.Typer(no_args_is_help=True, help="The configured database (OUTCOMES_STORE).")
app.add_typer(db_app, name="db")
app.add_typer(import_app, name="import")
app.add_typer(audit_app, name="audit")
app.add_typer(patients_app, name="patients")
app.add_typer(keys_app, name="keys")
alerts_app = typer.Typer(no_args_is_help=True, help="Alerts on the episodes (ADR 0031).")
app.add_typer(alerts_app, name="alerts")
app.command("backup")(backup_command)
app.command("restore")(restore_command)

Clinic = Annotated[str, typer.Option("--clinic", help="Clinic id the episodes belong to.")]
CriteriaOption = Annotated[str, typer.Option("--criteria", help="Criteria set of new episodes.")]
Source = Annotated[str | None, typer.Option(
    help="Name of the source system (part of every business key and patient hash).")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Report what would happen; write nothing.")]
BatchSize = Annotated[int | None, typer.Option(
    "--batch-size", min=0, help="Records per transaction, whole patients (default 500; 0: one "
    "transaction per assessment). An interrupted import run again resumes.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")]
CloseAtLastVisit = Annotated[bool, typer.Option(
    "--close-at-last-visit", help="Discharge each imported episode on its last assessment's "
    "clinical date (a trial file: the course ends at the last visit).")]


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"outcomes {version('outcome-ledger')}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option(
        "--version", "-V", callback=_version, is_eager=True,
        help="Print the installed version and exit.")] = False,
) -> None:
    """Outcome Ledger: stage treatment outcomes under versioned criteria sets."""
    from trust.files import private_umask

    private_umask()  # every file a command writes is 0600, every folder 0700 (ADR 0024)


def _fail(message: str) -> NoReturn:
    """One line on stderr, exit status 2 (bad input or usage)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


def cli_user() -> str:
    """Who a writing command records as ``recorded_by``: ``cli:<os user>`` (whoever can run
    the command can open the store itself; the name says the write bypassed the API)."""
    import getpass

    return f"cli:{getpass.getuser()}"


def _custom_sets() -> list[CriteriaSet]:
    """The latest version of every custom set registered in the configured store (none when
    there is no store yet; nothing is created)."""
    from bootstrap import Settings, open_existing_store

    store = open_existing_store(Settings())
    if store is None:
        return []
    try:
        return store.custom_criteria()
    finally:
        store.close()


def _criteria_set(criteria: str, params: list[str] | None) -> CriteriaSet:
    """A built-in or registered custom set, or its variant with ``--param`` overrides. Exits 2
    naming every known set when ``criteria`` is none of them."""
    custom = {c.id: c for c in _custom_sets()}
    try:
        return get_criteria(criteria, parse_overrides(params or []), custom=custom.get)
    except UnknownCriteriaError:
        _fail(f"criteria: unknown criteria set {split_criteria_id(criteria)[0]!r}; known: "
              f"{', '.join([*BUILTIN, *custom])}")


@app.command()
def evaluate(
    file: Annotated[Path, typer.Argument(help="Trajectory JSON (vectors.json row format); - = stdin.")],
    criteria: Annotated[str, typer.Option(
        help="Criteria set id, built-in (e.g. acnp2006) or registered in the store.")],
    param: Annotated[
        list[str] | None, typer.Option(help="Override a parameter: KEY=VALUE (repeatable).")
    ] = None,
) -> None:
    """Stage one trajectory and print the decisions as JSON (nothing is stored).

    Longitudinal sets print the event list; nhs-talking-therapies-2024 the course outcome;
    cms159 {"met": bool, ...}. Bad input: one line on stderr naming the row and field, exit 2.
    """
    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text()
    except OSError as exc:
        _fail(f"cannot read {file}: {exc.strerror}")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        _fail(f"{file} is not JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}")
    try:
        criteria_set = _criteria_set(criteria, param)
        result = evaluate_trajectory(parse_trajectory(doc), criteria_set)
    except TrajectoryError as exc:  # names the row and the field itself
        _fail(str(exc))
    except DomainError as exc:
        _fail(f"{exc.field}: {exc.message}" if exc.field else exc.message)
    typer.echo(json.dumps(render(result), indent=1))


def _console() -> Any:
    """A rich console; off a terminal (a pipe, a file) 160 columns wide instead of rich's 80, so
    tables are not squeezed."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=160)


@criteria_app.command("list")
def criteria_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the built-in criteria sets and the custom sets registered in the store (latest
    version of each) with version, content hash and source."""
    sets = [s.describe() for s in [*BUILTIN.values(), *_custom_sets()]]
    if as_json:
        typer.echo(json.dumps(sets, indent=1))
        return
    from rich.table import Table

    table = Table("id", "version", "hash", "kind", "source")
    table.columns[0].no_wrap = table.columns[2].no_wrap = True
    for s in sets:
        table.add_row(s["id"], s["version"], s["hash"][:12], s["kind"], s["source"])
    _console().print(table)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface (default OUTCOMES_HOST, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default OUTCOMES_PORT, 8000).")] = None,
    workers: Annotated[int | None, typer.Option(
        min=1, max=64, help="API worker processes (default OUTCOMES_WORKERS, 1).")] = None,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs) on the configured store (default SQLite,
    ./var/outcomes.sqlite; settings from OUTCOMES_* environment variables).

    The store is checked and the port bound first: a store that is not the configured one, not
    initialised (PostgreSQL: ``outcomes db init``) or unreachable, or a port that cannot be
    bound, is one line on stderr, exit 1. ``listening`` (host, port) is logged once the server
    accepts connections. With ``--workers N`` (N > 1) N processes serve the same socket; on
    SQLite this command also starts one ``outcomes projections run`` process and stops it on
    exit; on PostgreSQL run the runners yourself (docs/deployment.md).
    """
    import os

    from api import create_app
    from api.auth import is_loopback
    from api.serving import ListenError, bind, run, run_workers
    from bootstrap import Settings

    if workers is not None:
        os.environ["OUTCOMES_WORKERS"] = str(workers)  # the workers read their settings again
    try:
        settings = Settings()
    except ValueError as exc:
        _fail(str(exc).splitlines()[0])
    interface = host or settings.host
    if settings.auth_issuer is None and not is_loopback(interface):
        _fail(f"development mode (no OUTCOMES_AUTH_ISSUER) serves on loopback only, not "
              f"{interface}: set OUTCOMES_AUTH_ISSUER for production or serve on 127.0.0.1")
    try:
        application = create_app(settings)
    except ValueError as exc:
        _fail(str(exc))
    _check_store(settings)  # tables created (SQLite) before any worker starts
    try:
        sock = bind(interface, settings.port if port is None else port)
    except ListenError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    if settings.workers == 1:
        run(application, sock, header_timeout=settings.header_timeout)
        return
    stop_runner = _start_runner(settings)
    try:
        run_workers(sock, settings.workers)
    finally:
        if stop_runner is not None:
            stop_runner()


@contextlib.contextmanager
def _store_refusals(settings: Any) -> Iterator[None]:
    """Turn a StartupError (``bootstrap``) or an unreachable database into one line on stderr
    and exit 1 (``serve``, ``projections run``, ``db init``)."""
    from api.freshness import UNAVAILABLE
    from bootstrap import StartupError

    try:
        yield
    except StartupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    except UNAVAILABLE as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        typer.echo(f"error: the {settings.store} database cannot be reached: {first}", err=True)
        raise typer.Exit(code=1) from None


def _open(settings: Any, *, rebuilding: bool = False) -> Any:
    """``bootstrap.build(settings, rebuilding=...)``, a StartupError (e.g. a wrong
    OUTCOMES_CIPHER_KEY) or an unreachable database as one line on stderr, exit 1."""
    from bootstrap import build

    with _store_refusals(settings):
        return build(settings, rebuilding=rebuilding)


def _check_store(settings: Any) -> None:
    """Open and close the configured stores once (SQLite: creating files and tables); a
    StartupError or an unreachable database is one line on stderr, exit 1."""
    from bootstrap import build

    with _store_refusals(settings):
        build(settings).close()


def _start_runner(settings: Any) -> Callable[[], None] | None:
    """With several workers on SQLite (runners mode): one ``outcomes projections run`` child
    process, started again when it exits (its stall watchdog exits non-zero); returns the
    function that stops it. None on PostgreSQL (runners are deployed separately, see
    docs/deployment.md), in inline mode, or while ``projections.runner`` has no ``run``."""
    import subprocess
    import threading

    import projections.runner

    if (settings.store != "sqlite" or settings.projection_mode() != "runners"
            or not hasattr(projections.runner, "run")):
        return None
    command = [sys.executable, "-m", "cli", "projections", "run"]
    stopped = threading.Event()
    state = {"process": subprocess.Popen(command)}

    def supervise() -> None:
        while not stopped.wait(1.0):
            if state["process"].poll() is not None:
                state["process"] = subprocess.Popen(command)

    thread = threading.Thread(target=supervise, name="runner-supervisor", daemon=True)
    thread.start()

    def stop() -> None:
        stopped.set()
        thread.join(timeout=5)
        process = state["process"]
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
    return stop


@db_app.command("init")
def db_init() -> None:
    """Create every table of the configured store once: the event stores (outcomes, re-scoring
    runs, access log) and the read models; on PostgreSQL in OUTCOMES_POSTGRES_SCHEMA, created
    if missing. Run it before the first ``outcomes serve`` or ``projections run`` on PostgreSQL
    (they never create tables there); on SQLite it creates the files. Safe to run again; several
    at once wait for each other. An unreachable database: one line on stderr, exit 1."""
    from bootstrap import Settings, init_store

    settings = Settings()
    with _store_refusals(settings):
        done = init_store(settings)
    where = (f"{settings.postgres_dbname}.{settings.postgres_schema}"
             if settings.store == "postgres" else settings.store)
    for line in done:
        typer.echo(f"{where}: {line} ready")


@app.command("dev-token")
def dev_token(
    sub: Annotated[str, typer.Option(help="The subject (recorded as recorded_by).")],
    role: Annotated[list[str] | None, typer.Option(
        help="clinician, auditor, researcher or admin (repeatable).")] = None,
    clinic: Annotated[list[str] | None, typer.Option(help="A clinic id (repeatable).")] = None,
    ttl: Annotated[int, typer.Option(min=1, max=86400, help="Seconds the token is valid.")] = 3600,
) -> None:
    """Print a bearer token of the development issuer (bare, on stdout) for the server in
    development mode (no OUTCOMES_AUTH_ISSUER); its key is created beside the store."""
    from api.auth import DevIssuer, dev_key_path
    from api.identity import ROLES
    from bootstrap import Settings

    settings = Settings()
    if settings.auth_issuer is not None:
        _fail("OUTCOMES_AUTH_ISSUER is set: tokens come from that issuer, not dev-token")
    if unknown := sorted(set(role or []) - set(ROLES)):
        _fail(f"role: unknown {', '.join(unknown)}; known: {', '.join(ROLES)}")
    issuer = DevIssuer(dev_key_path(settings))
    typer.echo(issuer.mint(sub=sub, roles=role or [], clinics=clinic or [], ttl=ttl,
                           roles_claim=settings.auth_roles_claim,
                           clinics_claim=settings.auth_clinics_claim,
                           audience=settings.auth_audience or "outcome-ledger"))


def _read_models(services: Any) -> dict[str, Any]:
    """Each read model's name -> the ``ReadModels`` that tracks it: the episodes' store's, and
    ``access-log`` tracked from the access log's own store."""
    groups = (services.read_models, services.access_views)
    return {name: group for group in groups for name in group.classes}


@projections_app.command("rebuild")
def projections_rebuild(
    name: Annotated[str, typer.Argument(
        help="Read model: episodes, stages, audit, cohort, fold-inputs, caseload, access-log or all.")],
) -> None:
    """Rebuild a read model from position 0 of its event store into a new generation beside
    the live one, with a progress bar; readers switch to it atomically once it has caught up
    (also how a refused read model is brought back)."""
    from rich.progress import Progress

    from bootstrap import Settings
    from projections.runner import ACCESS_MODELS, READ_MODELS

    known = [*READ_MODELS, *ACCESS_MODELS]
    names = known if name == "all" else [name]
    if any(n not in known for n in names):
        _fail(f"unknown read model {name!r}; known: {', '.join(known)}, all")
    services = _open(Settings(), rebuilding=True)
    try:
        models = _read_models(services)
        for view_name in names:
            with Progress() as progress:
                task = progress.add_task(f"rebuilding {view_name}", total=None)

                def advance(position: int, last: int, task: Any = task, bar: Any = progress) -> None:
                    bar.update(task, completed=position, total=last)

                count = models[view_name].rebuild(view_name, advance)
            typer.echo(f"{view_name}: {count} events processed, position "
                       f"{models[view_name].status()[view_name]['position']}")
    finally:
        services.close()


@projections_app.command("status")
def projections_status() -> None:
    """Each read model's position and lag behind its event store (``access-log``: the access
    log's own store, whose positions are not the episodes' store's)."""
    from bootstrap import Settings

    services = _open(Settings())
    try:
        typer.echo(json.dumps({**services.read_models.status(), **services.access_views.status()},
                              indent=1))
    finally:
        services.close()


@projections_app.command("run")
def projections_run(
    names: Annotated[list[str] | None, typer.Argument(
        help="Read models to keep current (default all): episodes, stages, audit, cohort, "
             "access-log.")] = None,
) -> None:
    """Keep read models current until SIGTERM or SIGINT (exit 0): one runner per read model at
    a time (a second waits and takes over), resuming from the tracked position after any
    crash; exits 1 when a read model's lag stays above zero, unchanged, for
    OUTCOMES_PROJECTION_STALL_S seconds (logged first)."""
    import signal
    import threading

    from bootstrap import Settings, configure_logging
    from projections.runner import ACCESS_MODELS, READ_MODELS, run

    known = [*READ_MODELS, *ACCESS_MODELS]
    if unknown := [n for n in names or [] if n not in known]:
        _fail(f"unknown read model {', '.join(unknown)}; known: {', '.join(known)}")
    settings = Settings()
    configure_logging(settings)
    _check_store(settings)  # one line, exit 1: tables missing (`outcomes db init`), unreachable
    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stop.set())
    code = run(names or [], settings, stop)
    if code:  # a stalled runner's threads may hang on a dead connection: do not wait for them
        sys.stderr.flush()
        os._exit(code)


def _run_import(read: Callable[[ImportSummary], Iterator[Any]], *, clinic: str, criteria: str,
                source: str, dry_run: bool, as_json: bool, batch_size: int | None,
                close_at_last_visit: bool = False) -> None:
    """Read records (``read`` adds unreadable files to the summary), import them with a progress
    bar, print the summary; exit 1 when a file was unreadable."""
    from rich.progress import Progress

    from bootstrap import Settings
    from importers.pipeline import Importer, ImportSummary, Pseudonymiser

    settings = Settings()
    try:
        pseudonymise = Pseudonymiser(settings.pseudonym_key_bytes())
    except ValueError as exc:
        _fail(f"OUTCOMES_PSEUDONYM_KEY: {exc}")
    services = _open(settings)
    try:
        importer = Importer(services.app, clinic_id=clinic, criteria=criteria, source=source,
                            pseudonymise=pseudonymise, dry_run=dry_run,
                            recorded_by=cli_user(), close_at_last_visit=close_at_last_visit,
                            **({} if batch_size is None else {"batch_size": batch_size}))
        summary = ImportSummary()
        with Progress(transient=True) as progress:
            task = progress.add_task("importing", total=None)
            importer.run(read(summary), summary,
                         lambda done, total: progress.update(task, completed=done, total=total))
    except DomainError as exc:
        _fail(str(exc))
    finally:
        services.close()
    _print_summary(summary, as_json)
    raise typer.Exit(code=summary.exit_code)


def _print_summary(summary: ImportSummary, as_json: bool) -> None:
    """The summary table, or with ``--json`` the summary and where each skipped record is."""
    data = summary.as_dict(skipped_records=as_json)
    if as_json:
        typer.echo(json.dumps(data, indent=1))
        return
    from rich.table import Table

    table = Table("", "count", title="dry run: nothing written" if summary.dry_run else None)
    for name in ("files", "resources_read", "assessments_recorded", "episodes_opened",
                 "episodes_closed", "duplicates", "voided"):
        if name not in data:
            continue
        table.add_row(name.replace("_", " "), str(data[name]))
    for kind, rows in (("recorded", data["by_instrument"]), ("skipped", data["skipped"]),
                       ("flagged", data["flagged"])):
        for reason, count in sorted(rows.items()):
            table.add_row(f"{kind}: {reason}", str(count))
    for path in summary.unreadable:
        table.add_row(f"unreadable: {path}", "")
    _console().print(table)


@import_app.command("csv")
def import_csv(
    file: Annotated[Path, typer.Argument(help="The CSV file (header row first).")],
    clinic: Clinic,
    patient: Annotated[str, typer.Option(help="Column: the source patient id.")],
    criteria: CriteriaOption = "acnp2006",
    date_column: Annotated[str | None, typer.Option(
        "--date", help="Column: clinical date (ISO date or datetime with offset).")] = None,
    day: Annotated[str | None, typer.Option(help="Column: days since --anchor.")] = None,
    anchor: Annotated[str | None, typer.Option(help="Date of day 0 (YYYY-MM-DD).")] = None,
    instrument: Annotated[str | None, typer.Option(
        help="One instrument for every row (PHQ-9, GAD-7, HAM-D17, ...).")] = None,
    instrument_column: Annotated[str | None, typer.Option(
        help="Column: instrument code or LOINC total code; other rows are skipped.")] = None,
    total: Annotated[str | None, typer.Option(help="Column: total score.")] = None,
    items: Annotated[str | None, typer.Option(help="Columns of the items, comma-separated.")] = None,
    baseline: Annotated[str | None, typer.Option(
        help="Column repeating the baseline score on every row (recorded once, at day 0).")] = None,
    key: Annotated[str | None, typer.Option(
        help="Column: a row id (default patient+date+instrument).")] = None,
    source: Source = None,
    dry_run: DryRun = False,
    as_json: AsJson = False,
    batch_size: BatchSize = None,
    close_at_last_visit: CloseAtLastVisit = False,
) -> None:
    """Import a CSV file with a column mapping; a trial file with a day column and a baseline
    column imports as it is (see the README)."""
    from datetime import date

    from importers.records import UnreadableFileError
    from importers.tabular import CsvMapping, MissingColumnError, csv_header, read_csv

    try:
        mapping = CsvMapping(
            patient=patient, date=date_column, day=day,
            anchor=date.fromisoformat(anchor) if anchor else None, instrument=instrument_column,
            fixed_instrument=instrument, total=total,
            items=tuple(c.strip() for c in items.split(",")) if items else (), baseline=baseline,
            key=key)
    except ValueError:
        _fail("--anchor: expected a date, YYYY-MM-DD")
    try:
        mapping.validate()  # a contradictory mapping is a usage error, not an unreadable file
        mapping.check(csv_header(file))  # and so is one naming a column the file lacks
    except MissingColumnError as exc:
        _fail(f"{file.name} has no column {', '.join(exc.missing)}; its columns: "
              f"{', '.join(exc.columns)}")
    except ValueError as exc:
        _fail(str(exc))
    except UnreadableFileError:
        pass  # reported in the summary by the import itself (exit 1)

    def read(summary: ImportSummary) -> Iterator[Any]:
        summary.files = 1
        try:
            yield from read_csv(file, mapping)
        except UnreadableFileError as exc:
            summary.unreadable.append(f"{exc.path}: {exc.reason}")

    _run_import(read, clinic=clinic, criteria=criteria, source=source or f"csv:{file.name}",
                dry_run=dry_run, as_json=as_json, batch_size=batch_size,
                close_at_last_visit=close_at_last_visit)


@import_app.command("fhir")
def import_fhir(
    paths: Annotated[list[Path], typer.Argument(help="FHIR JSON files or folders (recursive).")],
    clinic: Clinic,
    criteria: CriteriaOption = "acnp2006",
    source: Source = None,
    dry_run: DryRun = False,
    as_json: AsJson = False,
    batch_size: BatchSize = None,
    close_at_last_visit: CloseAtLastVisit = False,
) -> None:
    """Import QuestionnaireResponses and Observations (panels, items, totals) from FHIR R4 or
    STU3 files: Bundles (transaction, collection, searchset) or single resources."""
    from importers.fhir import fhir_files, read_fhir

    def read(summary: ImportSummary) -> Iterator[Any]:
        summary.files = len(list(fhir_files(paths)))
        yield from read_fhir(paths, source=source or "fhir", on_unreadable=lambda exc:
                             summary.unreadable.append(f"{exc.path}: {exc.reason}"))

    _run_import(read, clinic=clinic, criteria=criteria, source=source or "fhir",
                dry_run=dry_run, as_json=as_json, batch_size=batch_size,
                close_at_last_visit=close_at_last_visit)


Param = Annotated[list[str] | None, typer.Option(
    "--param", help="Override a parameter: KEY=VALUE (repeatable).")]


@app.command()
def rescore(
    criteria: Annotated[str | None, typer.Option(help="Criteria set id to re-score under.")] = None,
    param: Param = None,
    clinic: Annotated[str | None, typer.Option(help="Only this clinic's episodes.")] = None,
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="Transaction time with UTC offset (default now).")] = None,
    resume: Annotated[str | None, typer.Option(help="Resume an interrupted run by its id.")] = None,
    workers: Annotated[int | None, typer.Option(
        min=1, help="Worker processes, each over a range of episode ids (default: one per "
                    "core, at most 4, one per 2,000 episodes).")] = None,
) -> None:
    """Shadow re-scoring: replay every selected episode's valid assessments under other criteria
    and report what would change (nothing in the episodes changes). Ctrl-C interrupts; resume
    with --resume RUN_ID (each range of episode ids resumes where it stopped)."""
    from uuid import UUID

    from rich.progress import Progress

    from bootstrap import Settings
    from domain.trajectory import parse_aware_datetime

    services = _open(Settings())
    try:
        if resume:
            run_id = UUID(resume)
            if services.rescorings.run(run_id) is None:
                _fail(f"no re-scoring run {run_id}")
        elif criteria:
            moment = parse_aware_datetime(as_of, "as_of") if as_of else None
            run_id = services.shadow_runs.request(
                criteria=criteria, params=parse_overrides(param or []), clinic_id=clinic,
                as_of=moment, recorded_by=cli_user()).run_id
        else:
            _fail("give --criteria (a new run) or --resume RUN_ID")
        typer.echo(f"run {run_id}", err=True)
        with Progress(transient=True) as progress:  # stdout is for the JSON
            task = progress.add_task("re-scoring", total=None)
            status = services.shadow_runs.execute(
                run_id, lambda done, total: progress.update(task, completed=done, total=total),
                workers=workers)
        typer.echo(json.dumps(services.rescorings.run(run_id), indent=1))
        if status == "interrupted":
            typer.echo(f"interrupted: resume with outcomes rescore --resume {run_id}", err=True)
            raise typer.Exit(code=130)
    except (DomainError, ValueError) as exc:
        _fail(str(exc))
    finally:
        services.close()


@app.command()
def adopt(
    criteria: Annotated[str, typer.Option(help="Criteria set id to adopt.")],
    reason: Annotated[str, typer.Option(help="Why (recorded with the adoption).")],
    param: Param = None,
    clinic: Annotated[str | None, typer.Option(help="Every open episode of this clinic.")] = None,
    episode: Annotated[str | None, typer.Option(help="One episode id.")] = None,
) -> None:
    """Adopt another criteria set: appends CriteriaAdopted and the retractions and new decisions
    it implies; history is never rewritten."""
    from dataclasses import asdict
    from uuid import UUID

    from bootstrap import Settings

    if (clinic is None) == (episode is None):
        _fail("give exactly one of --clinic or --episode")
    services = _open(Settings())
    user = cli_user()
    try:
        params = parse_overrides(param or [])
        if episode is not None:
            result = services.app.adopt_criteria(UUID(episode), criteria=criteria, params=params,
                                                 reason=reason, recorded_by=user)
            out: Any = {"episode_id": episode, "adopted": not result.replayed,
                        "retracted": len(result.retracted), "asserted": len(result.stage_events)}
        else:
            assert clinic is not None
            out = asdict(services.adoptions.adopt(clinic, criteria=criteria, params=params,
                                                  reason=reason, recorded_by=user))
        typer.echo(json.dumps(out, indent=1, default=str))
    except (DomainError, ValueError) as exc:
        _fail(str(exc))
    finally:
        services.close()


# -- signals (ADR 0033) -----------------------------------------------------------------------

signals_app = typer.Typer(no_args_is_help=True, help="Off-track signals: rule packs, the clinic's "
                          "choice, the expected-recovery fit and back-tests.")
app.add_typer(signals_app, name="signals")
SignalsClinic = Annotated[str, typer.Option("--clinic", help="The clinic id.")]


@signals_app.command("list")
def signals_list(as_json: AsJson = False) -> None:
    """The built-in rule packs: id, version, kind, content hash, title (with --json: each
    pack's whole definition, its parameters and source)."""
    from domain.signals.packs import BUILTIN_PACKS

    if as_json:
        typer.echo(json.dumps([p.describe() for p in BUILTIN_PACKS.values()], indent=1))
        return
    from rich.table import Table

    table = Table("id", "version", "kind", "hash", "title")
    for pack in BUILTIN_PACKS.values():
        table.add_row(pack.id, pack.version, pack.kind, pack.hash[:12], pack.title)
    _console().print(table)


@signals_app.command("fit")
def signals_fit(
    clinic: SignalsClinic,
    instrument: Annotated[str, typer.Option(help="The staged instrument (PHQ-9, QIDS-SR16, "
                                                 "HAM-D17).")],
    min_episodes: Annotated[int | None, typer.Option(
        "--min-episodes", help="Fewest episodes a baseline band needs (default 30).")] = None,
) -> None:
    """Fit the expected-recovery curves on the clinic's closed episodes (OLS of score on
    ln(1 + week) per baseline band; Finch et al. 2001) and record the fit (RecoveryCurveFitted).
    Prints the recorded model as JSON."""
    from bootstrap import Settings

    services = _open(Settings())
    try:
        curve, watch = services.signals.fit(clinic, instrument, min_episodes=min_episodes,
                                            recorded_by=cli_user())
    except (DomainError, ValueError) as exc:
        _fail(str(exc))
    finally:
        services.close()
    typer.echo(json.dumps({**curve.describe(), "recorded": watch.recorded,
                           "episodes_watched": len(watch.watched)}, indent=1))
    if not curve.bands:
        typer.echo(f"note: no baseline band has {curve.min_episodes} closed episodes; "
                   "expected-recovery signals will say so", err=True)


@signals_app.command("watch")
def signals_watch(
    clinic: SignalsClinic,
    rule: Annotated[list[str], typer.Option("--rule", help="A rule pack id (repeatable; "
                                                           "variants: id|key=value).")],
    reason: Annotated[str, typer.Option(help="Why (recorded with the choice).")],
) -> None:
    """Choose the rule packs that watch the clinic's episodes (RulePacksChosen) and apply the
    choice to each open episode (SignalsWatched); episodes opened later are watched by it too."""
    from dataclasses import asdict

    from bootstrap import Settings

    services = _open(Settings())
    try:
        done = services.signals.choose_rule_packs(clinic, packs=rule, reason=reason,
                                                  recorded_by=cli_user())
        record = services.app.clinic_signals(clinic)
    except DomainError as exc:
        _fail(str(exc))
    finally:
        services.close()
    typer.echo(json.dumps(asdict(done), indent=1, default=str))
    # on stderr, so that stdout stays one JSON document
    typer.echo(f"note: these packs replace what watched clinic {clinic}'s episodes (the "
               "defaults too: name them to keep them)", err=True)
    if any(r.split("|")[0] == "expected-recovery" for r in rule) and not (
            record is not None and record.curves):
        typer.echo(f"note: clinic {clinic} has no expected-recovery fit yet: its signal says "
                   "'insufficient' until `outcomes signals fit --clinic "
                   f"{clinic} --instrument I` records one", err=True)


@signals_app.command("backtest")
def signals_backtest(
    rule: Annotated[str, typer.Option("--rule", help="The rule pack id to replay.")],
    clinic: SignalsClinic,
    outcome: Annotated[str, typer.Option(
        help="What not on track predicts the absence of at discharge: response (>= 50 % "
             "reduction) or remission (below the criteria set's remission threshold).")
    ] = "response",
    as_json: AsJson = False,
) -> None:
    """Replay the clinic's closed episodes as of each decision point and report how well "not
    on track" predicted no response (or no remission) at discharge. Exit 1 when the rule
    applies to none of them."""
    from application.backtest import NothingToBacktestError, backtest, closed_series
    from bootstrap import Settings
    from domain.signals.packs import get_rule_pack

    if outcome not in ("response", "remission"):
        _fail("--outcome: response or remission")
    try:
        pack = get_rule_pack(rule)
    except DomainError as exc:
        _fail(str(exc))
    services = _open(Settings())
    try:
        result = backtest(pack, clinic, closed_series(services.app, clinic),
                          outcome=outcome, now=services.app.clock())  # type: ignore[arg-type]
    except NothingToBacktestError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    except ValueError as exc:
        _fail(str(exc))
    finally:
        services.close()
    if as_json:
        typer.echo(json.dumps(result.as_json(), indent=1))
        return
    _print_backtest(result)


def _print_backtest(result: Any) -> None:
    from rich.table import Table

    def ratio(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    table = Table("instrument", "decision point", "evaluated", "not on track", "insufficient",
                  "no later score", "TP", "FP", "TN", "FN", "sensitivity", "specificity", "PPV",
                  "NPV",
                  title=f"{result.rule['id']} v{result.rule['version']} at {result.clinic_id}: "
                        f"not on track vs no {result.outcome} at discharge")
    for r in result.rows:
        table.add_row(r.instrument, r.decision_point, str(r.evaluated), str(r.not_on_track),
                      str(r.insufficient), str(r.no_later_score), str(r.tp), str(r.fp),
                      str(r.tn), str(r.fn),
                      ratio(r.sensitivity), ratio(r.specificity), ratio(r.ppv), ratio(r.npv))
    console = _console()
    console.print(table)
    excluded = ", ".join(f"{k}: {v}" for k, v in result.excluded.items()) or "none"
    console.print(f"closed episodes the rule applies to: {result.episodes} (left out: "
                  f"{excluded})")
    console.print(f"method: {result.method}")
    for note in result.notes:
        console.print(f"note: {note}")


@alerts_app.command("sweep")
def alerts_sweep(
    overdue_days: Annotated[int | None, typer.Option(
        "--overdue-days", min=1, max=365,
        help="Days without a scorable assessment (default OUTCOMES_OVERDUE_DAYS, 28).")] = None,
) -> None:
    """Raise an overdue alert on every open episode without a scorable assessment of its
    staged instrument for --overdue-days days (none while one is unresolved); prints a JSON
    summary: the day, the days, the episodes checked and flagged."""
    from application.overdue import sweep_overdue
    from bootstrap import Settings

    settings = Settings()
    services = _open(settings)
    try:
        done = sweep_overdue(services.app, services.read_models.open_episodes,
                             overdue_days=overdue_days or settings.overdue_days,
                             recorded_by=cli_user())
        typer.echo(json.dumps({"today": done.today.isoformat(),
                               "overdue_days": done.overdue_days, "episodes": done.episodes,
                               "flagged": [str(i) for i in done.flagged]}, indent=1))
    except (DomainError, ValueError) as exc:
        _fail(str(exc))
    finally:
        services.close()


if __name__ == "__main__":
    app()
