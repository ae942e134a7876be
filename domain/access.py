"""The access log's record: who asked for what, and what they were answered.

One ``AccessRecord`` aggregate per HTTP request (never a shared log aggregate: an append needs
no read of earlier records, so concurrent requests never conflict). Its one event,
``AccessRecord.Recorded``, holds ids, codes and the status only: no ``patient_ref``, body,
token or query-string values (HIPAA Security Rule audit controls, 45 CFR 164.312(b); the fields
map to a FHIR R4 AuditEvent per IHE BALP, docs/access-log.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import uuid4

from eventsourcing.domain import Aggregate

ANONYMOUS = "anonymous"  # ``sub`` of a request without an authenticated principal


@dataclass(frozen=True)
class Access:
    """One request as the access log keeps it.

    ``sub``: the token's subject, or ``ANONYMOUS`` when ``authenticated`` is False (a failed or
    missing authentication); ``roles``/``clinics``: the principal's (sorted; empty when
    anonymous); ``clinic_id``: the clinic the request concerns (None: unknown or none);
    ``method`` and ``route`` (the route template, ``unmatched`` when no route matched);
    ``episode_id``, ``run_id``, ``assessment_id``: resource ids, where known; ``status``: the
    HTTP status answered; ``at``: when the request arrived (timezone-aware UTC);
    ``request_id``: the ``X-Request-ID`` echoed; ``client``: the peer's network address."""

    sub: str
    authenticated: bool
    roles: tuple[str, ...]
    clinics: tuple[str, ...]
    clinic_id: str | None
    method: str
    route: str
    episode_id: str | None
    run_id: str | None
    assessment_id: str | None
    status: int
    at: datetime
    request_id: str
    client: str | None


class AccessRecord(Aggregate):
    """One access-log record (append-only: it has no event after ``Recorded``)."""

    TOPIC = "outcome-ledger:AccessRecord"

    class Created(Aggregate.Created):  # unused; explicit topics are all-or-nothing
        TOPIC = "outcome-ledger:AccessRecord.Created"

    class Recorded(Aggregate.Created):
        TOPIC = "outcome-ledger:AccessRecord.Recorded"
        sub: str
        authenticated: bool
        roles: list[str]
        clinics: list[str]
        clinic_id: str | None
        method: str
        route: str
        episode_id: str | None
        run_id: str | None
        assessment_id: str | None
        status: int
        at: datetime
        request_id: str
        client: str | None

    def __init__(self, sub: str, authenticated: bool, roles: list[str], clinics: list[str],
                 clinic_id: str | None, method: str, route: str, episode_id: str | None,
                 run_id: str | None, assessment_id: str | None, status: int, at: datetime,
                 request_id: str, client: str | None) -> None:
        self.access = Access(sub, authenticated, tuple(roles), tuple(clinics), clinic_id,
                             method, route, episode_id, run_id, assessment_id, status, at,
                             request_id, client)

    @classmethod
    def record(cls, access: Access) -> AccessRecord:
        """A new record of ``access`` (a fresh random id). Raises ValueError when ``at`` is not
        timezone-aware."""
        if access.at.tzinfo is None:
            raise ValueError("access time must be timezone-aware")
        return cls._create(
            cls.Recorded, id=uuid4(), sub=access.sub, authenticated=access.authenticated,
            roles=list(access.roles), clinics=list(access.clinics), clinic_id=access.clinic_id,
            method=access.method, route=access.route, episode_id=access.episode_id,
            run_id=access.run_id, assessment_id=access.assessment_id, status=access.status,
            at=access.at, request_id=access.request_id, client=access.client)
