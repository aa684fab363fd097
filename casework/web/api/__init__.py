"""The REST API under ``/api/v1``: cases, events, allocation, deadlines, notices, documents.

For integrations (the LA's case system, a provider's own diary) and scripts. It is a
thin edge over the same use cases as the pages and the CLI, with the same reach per
role: a bearer token acts as its user, so provider staff see only the cases allocated
to their provider (any other reference answers 404, exactly like a case that does not
exist, so a reference cannot be probed) and cannot open or allocate cases.

Every error is JSON ``{"error": ..., "field": ..., "allowed": [...]}`` whose message
says what to do next: 401 without a valid token, 403 for an action the role may not
take, 404, 409 for a refused transition or a stale ``expected_version`` (with the
events allowed now), 422 for invalid data (naming the field). Request and response
bodies are pydantic models so the OpenAPI document (``/api/v1/openapi.json``) is
precise enough to generate clients and to fuzz (tests/web/test_schemathesis.py).

Reading a case is recorded in its audit trail (``viewed``, channel ``api``), as the
pages record page views: children's data is read by named people, on the record.

The package: :mod:`.schemas` (bodies), :mod:`.common` (errors, token, reach, paging),
:mod:`.views` (the case as returned) and one router per area, joined here in the order
the OpenAPI document lists them.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from casework.web.api import allocation, cases, deadlines, documents, notices
from casework.web.api.common import ERRORS, ApiRoute, bearer

router = APIRouter(
    prefix="/api/v1",
    tags=["api"],
    route_class=ApiRoute,
    responses=ERRORS,
    dependencies=[Depends(bearer)],
)
for _area in (cases, allocation, deadlines, notices, documents):
    router.include_router(_area.router)

__all__ = ["router"]
