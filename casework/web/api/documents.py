"""``/cases/{reference}/documents`` and ``/documents/{id}``: a case's documents and their bytes.

The list never carries the bytes or a certificate's verification code. Fetching a
document is recorded in the case's audit trail (``download_document``, channel
``api``) before the bytes are sent, as on the pages; provider tokens read only their
own cases' documents of the kinds listed in ``casework.cases.provider_view``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field

from casework import cases
from casework.auth import actor_for
from casework.web.api.common import ApiRoute, ApiUser, Reference, end_read, visible_case
from casework.web.deps import NowDep, SessionDep, SettingsDep

router = APIRouter(route_class=ApiRoute)

DocumentId = Annotated[int, Path(ge=1, le=2_147_483_647, description="The document's id")]


class DocumentOut(BaseModel):
    id: int
    kind: str = Field(description="certificate_declined, certificate_not_arranged, ...")
    version: int
    file_name: str
    media_type: str
    size: int
    sha256: str
    created_at: dt.datetime
    certificate_number: str | None
    current: bool = Field(description="False once a correction replaced it")


class DocumentListOut(BaseModel):
    items: list[DocumentOut]


@router.get(
    "/cases/{reference}/documents",
    response_model=DocumentListOut,
    summary="A case's documents (certificates), newest first, without their contents",
)
def list_documents(
    reference: Reference, user: ApiUser, session: SessionDep, now: NowDep, settings: SettingsDep
) -> DocumentListOut:
    case = visible_case(session, user, reference, now=now, settings=settings)
    found = cases.list_case_documents(session, case.reference, actor_for(user, "api"))
    return DocumentListOut(
        items=[
            DocumentOut(
                id=d.id,
                kind=d.kind,
                version=d.version,
                file_name=d.file_name,
                media_type=d.media_type,
                size=d.size,
                sha256=d.sha256,
                created_at=d.created_at,
                certificate_number=d.certificate_number,
                current=d.current,
            )
            for d in found
        ]
    )


@router.get(
    "/documents/{document_id}",
    response_class=Response,
    summary="One document's contents; the download is recorded in the case's audit trail",
    responses={
        200: {
            "description": "The file, as stored (its SHA-256 is in the documents list)",
            "content": {"application/pdf": {}, "text/calendar": {}},
        }
    },
)
def get_document(
    document_id: DocumentId, user: ApiUser, session: SessionDep, now: NowDep, settings: SettingsDep
) -> Response:
    end_read(session)
    document = cases.get_document(
        session, document_id, actor_for(user, "api"), now, settings=settings
    )
    return Response(
        content=document.content,
        media_type=document.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{document.file_name}"',
            "Cache-Control": "no-store",
        },
    )
