"""The application layer: use cases over the domain model and its stores.

``application.outcomes`` holds the write model (``OutcomesApplication``: one method per command
on an Episode). Use cases that span many aggregates or stores (adoption for a clinic, shadow
re-scoring runs) live beside it, so ``bootstrap`` only wires and ``projections`` only reads.
Dependencies point inward: ``api``/``cli`` → ``application`` → ``domain``.
"""
