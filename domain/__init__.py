"""Outcome Ledger's clinical core: instruments, criteria sets, the staging fold and the Episode aggregate.

Pure Python (stdlib + ``eventsourcing.domain``/``eventsourcing.application``): no web framework, no
environment, no logging configuration.
"""
