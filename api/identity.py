"""Who is asking: the authenticated principal of a request, and the roles it may hold.

``Principal`` is what every route sees of the caller once its bearer token is validated
(``api.auth``): the token's ``sub``, its roles and its clinics, from claims only. The
authentication dependency stores it on ``request.state.principal`` as well, so the access log
(``api.access``) can record who acted, and records ``anonymous`` when there is none (a failed
authentication). Routes that learn the clinic a request concerns (an episode's clinic, a
``clinic_id`` parameter) store it on ``request.state.clinic_id`` for the access log.
"""

from __future__ import annotations

from dataclasses import dataclass

# clinician: read and write episodes of their clinics; auditor: read episodes, audit trails and
# the access log of their clinics, no clinical writes; researcher: cohort figures and shadow runs
# of their clinics, no patient-level reads; admin: register criteria sets, adopt criteria for a
# clinic, rebuild read models. Every role is clinic-scoped; a token may carry several.
ROLES: tuple[str, ...] = ("clinician", "auditor", "researcher", "admin")


@dataclass(frozen=True)
class Principal:
    """The caller: ``sub`` (the token's subject, recorded as ``recorded_by``), ``roles`` (a
    subset of ``ROLES``; unknown role names in the token are dropped) and ``clinics`` (the
    clinic ids the token carries)."""

    sub: str
    roles: frozenset[str]
    clinics: frozenset[str]

    def has(self, role: str) -> bool:
        return role in self.roles

    def sees(self, clinic_id: str) -> bool:
        """Whether ``clinic_id`` is one of the caller's clinics."""
        return clinic_id in self.clinics
