"""The application layer: use cases over the domain model and its stores.

``application.outcomes`` holds the write model (``OutcomesApplication``: one method per command
on an Episode). Use cases that span many aggregates or stores live beside it:
``application.adoption`` (``ClinicAdoptions``: adopt a set for every open episode of a clinic)
and ``application.rescoring`` (``ShadowRuns`` and the runs' log ``RescoringLog``), reading the
episodes' store with ``application.episode_streams``; so ``bootstrap`` only wires and
``projections`` only reads (the shadow runs' results store, ``projections.rescorings``, is a
read-side store that the run use case fills).
Dependencies point inward: ``api``/``cli`` → ``application`` → ``domain``.
"""
