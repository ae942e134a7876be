"""GET /audit/proof: an event's hash and its RFC 6962 inclusion proof against the latest signed
checkpoint (trust.checkpoints), for auditors of the event's clinic."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request

from api.deps import PrincipalDep, ServicesDep, require
from api.openapi import problems
from api.responses import AuditProof
from domain.errors import ConflictError, NotFoundError
from projections.access_log import AccessLogView
from trust.checkpoints import CheckpointUnusable, NotCheckpointed, prove

router = APIRouter(tags=["audit"])
Store = Literal["outcomes", "rescoring-runs", "access-log"]
EPISODE_TOPIC = "outcome-ledger:Episode."


class NotCheckpointedError(ConflictError):
    code = "not-checkpointed"
    title = "Not yet in a signed checkpoint"


class CheckpointUnusableError(ConflictError):
    code = "checkpoint-unusable"
    title = "The latest checkpoint cannot be used"


@router.get("/audit/proof", response_model=AuditProof,
            responses=problems(401, 403, 404, 409, 422),
            dependencies=[Depends(require("auditor"))])
def audit_proof(services: ServicesDep, principal: PrincipalDep, request: Request,
                position: Annotated[int, Query(ge=1, le=2**62, description=(
                    "The event's position (``position`` in the audit trail)."))],
                store: Annotated[Store, Query(description="The event store.")] = "outcomes",
                ) -> AuditProof:
    """The event at ``position``: its chain hash, Merkle leaf hash, and inclusion proof
    (audit path, nearest sibling first) in the tree of the latest checkpoint, with that signed
    checkpoint. Verify with RFC 9162 §2.1.3.2 and the key of ``outcomes audit public-key``.
    404 when no event is there or it is another clinic's episode's (the same answer); 409
    ``not-checkpointed`` when the event came after the latest checkpoint (or there is none)."""
    missing = NotFoundError(f"no event at position {position} of {store}", field="position")
    if not _visible(services, principal, store, position):
        raise missing
    app = {"outcomes": services.app, "rescoring-runs": services.runs,
           "access-log": services.access_log}[store]
    settings = request.app.state.settings
    try:
        found = prove(settings, store, app.recorder, position)
    except NotCheckpointed as exc:
        raise NotCheckpointedError(str(exc), field="position") from None
    except CheckpointUnusable as exc:
        raise CheckpointUnusableError(str(exc)) from None
    if found is None:
        raise missing
    return AuditProof(
        store=found.store, position=found.position, leaf_index=found.leaf_index,
        event_hash=found.event_hash.hex(), leaf_hash=found.leaf_hash.hex(),
        tree_size=found.tree_size, root=found.root.hex(),
        proof=[p.hex() for p in found.proof], checkpoint=found.checkpoint)


def _visible(services: ServicesDep, principal: PrincipalDep, store: str, position: int) -> bool:
    """Whether the caller may see the event: an episode's event only for its clinic's auditors
    (the audit read model's clinic_id), an access record as GET /access-log shows it; others
    (custom criteria, shadow runs) to every auditor."""
    if store == "rescoring-runs":
        return True
    if store == "access-log":
        services.access_views.catch_up()
        view = services.access_views.views[AccessLogView.name]
        assert isinstance(view, AccessLogView)
        items, _ = view.records(visible_to=principal.clinics, after=position - 1, limit=1)
        return bool(items and items[0]["position"] == position)
    services.read_models.catch_up(["audit"])
    with services.read_models.audit.reading() as cursor:
        cursor.execute("SELECT clinic_id FROM audit_events WHERE position = ?", (position,))
        row = cursor.fetchone()
    if row is not None:
        return bool(row["clinic_id"] in principal.clinics)
    # not in the audit view: not an episode's event, or one the view has not reached yet
    # (runners): the latter's clinic is unknown, so it is not shown
    found = services.app.recorder.select_notifications(start=position, stop=position, limit=1)
    return not found or not found[0].topic.startswith(EPISODE_TOPIC)
