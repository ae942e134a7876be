"""Errors of the read side."""

from __future__ import annotations


class ViewUnavailable(Exception):
    """A read model that must not be read: ``name`` (``episodes`` ...) and ``reason`` (ahead of
    its event store, or built from another store). It stays refused until
    ``outcomes projections rebuild NAME`` builds a new generation."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"read model {name} refused: {reason}")
        self.name, self.reason = name, reason
