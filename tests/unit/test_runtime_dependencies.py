"""Every third-party module the service imports comes with the runtime lock (requirements.lock,
what ``make run`` installs), not only with the dev extra: ``make run`` on a fresh machine
crashed with ``No module named 'httpx'`` (authlib's Starlette client, api/ui/oidc.py) while
httpx was a dev dependency."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICE = ["api", "application", "domain", "projections", "importers", "trust",
           "bootstrap.py", "cli.py"]
OURS = {"api", "application", "domain", "projections", "importers", "trust", "bootstrap",
        "cli", "bench", "tests"}


def imported_modules() -> set[str]:
    found: set[str] = set()
    for entry in SERVICE:
        for path in ([ROOT / entry] if entry.endswith(".py") else (ROOT / entry).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    found |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return {m for m in found if m not in OURS and m not in sys.stdlib_module_names}


def normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_module_the_service_imports_is_in_the_runtime_lock() -> None:
    locked = {normalised(line.split("==")[0]) for line in
              (ROOT / "requirements.lock").read_text().splitlines()
              if line and not line.startswith((" ", "#"))}
    distributions = packages_distributions()
    modules = imported_modules()
    assert {"httpx", "authlib", "matplotlib", "fastapi", "cryptography"} <= modules
    missing = {m: distributions.get(m) for m in modules
               if not {normalised(d) for d in distributions.get(m, [m])} & locked}
    assert missing == {}
