"""The stages an episode can be in: the vocabulary of ``current_stage`` (SPEC §2.2-2.3 state
machines; Frank et al. 1991), one list for the domain, the read models and the API.

``episode``: no decision yet; ``below_threshold``: the baseline is under the episode threshold
(G5); ``response``, ``partial_remission``, ``remission`` (full), ``relapse``, ``recovery``,
``recurrence``: the latest milestone that moves the stage.
"""

from __future__ import annotations

STAGES: tuple[str, ...] = ("episode", "below_threshold", "response", "partial_remission",
                           "remission", "relapse", "recovery", "recurrence")
