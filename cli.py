"""The ``outcomes`` command line: offline evaluation of trajectories and the criteria catalogue."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from domain.criteria.builtin import BUILTIN, get_criteria, parse_overrides
from domain.errors import DomainError
from domain.trajectory import evaluate as evaluate_trajectory
from domain.trajectory import parse_trajectory, render

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Outcome Ledger: stage treatment outcomes under versioned criteria sets.")
criteria_app = typer.Typer(no_args_is_help=True, help="The criteria sets this engine knows.")
app.add_typer(criteria_app, name="criteria")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


@app.command()
def evaluate(
    file: Annotated[Path, typer.Argument(help="Trajectory JSON (vectors.json row format); - = stdin.")],
    criteria: Annotated[str, typer.Option(help="Criteria set id, e.g. acnp2006.")],
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
        criteria_set = get_criteria(criteria, parse_overrides(param or []))
        result = evaluate_trajectory(parse_trajectory(doc), criteria_set)
    except DomainError as exc:
        _fail(str(exc) if exc.field is None or str(exc).startswith(("row", "document"))
              else f"{exc.field}: {exc.message}")
    typer.echo(json.dumps(render(result), indent=1))


@criteria_app.command("list")
def criteria_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the built-in criteria sets with version, content hash and source."""
    sets = [s.describe() for s in BUILTIN.values()]
    if as_json:
        typer.echo(json.dumps(sets, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "version", "hash", "kind", "source")
    table.columns[0].no_wrap = True
    for s in sets:
        table.add_row(s["id"], s["version"], s["hash"][:12], s["kind"], s["source"])
    Console().print(table)


if __name__ == "__main__":
    app()
