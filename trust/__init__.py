"""Tamper evidence, encryption at rest, erasure and backup (issue 11)."""
