"""Delivery receipts from Twilio and SendGrid.

Both are verified before anything is read: Twilio's X-Twilio-Signature against
the configured public URL (behind a proxy ``request.url`` is the internal one),
SendGrid's ECDSA signature over the raw body with a replay window. Forged or
unsigned requests get 403 and change nothing.

Receipts are stored append-only with a dedupe key, so a provider's retry is a
no-op; a terminal status (delivered, failed) is never overwritten by a late
non-terminal one; a bounce or an undelivered SMS escalates to the adviser.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from casework.config import Settings
from casework.models import DeliveryEvent, Notice, NoticeStatus
from casework.notify.dispatch import escalate_failure
from casework.notify.receipts import (
    is_failure,
    is_terminal,
    verify_sendgrid_signature,
    verify_twilio_signature,
)

log = logging.getLogger("casework.webhooks")
router = APIRouter(prefix="/webhooks", tags=["webhooks"], include_in_schema=False)

SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


def _now(request: Request) -> dt.datetime:
    clock = getattr(request.app.state, "clock", None)
    return clock() if clock is not None else dt.datetime.now(dt.UTC)


def record_receipt(
    engine: Engine,
    settings: Settings,
    *,
    source: str,
    notice_public_id: str | None,
    provider_message_id: str | None,
    status: str,
    detail: str,
    dedupe_key: str,
    now: dt.datetime,
) -> str:
    """Apply one receipt; returns what happened ('duplicate', 'unknown', 'applied', ...)."""
    n = Notice.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        query = select(n)
        if notice_public_id:
            query = query.where(n.c.public_id == notice_public_id)
        elif provider_message_id:
            query = query.where(n.c.provider_message_id == provider_message_id)
        else:
            return "unknown"
        notice = conn.execute(query).first()
        if notice is None:
            return "unknown"
        try:
            with conn.begin_nested():
                conn.execute(
                    DeliveryEvent.__table__.insert(),  # type: ignore[attr-defined]
                    [
                        {
                            "notice_id": notice.id,
                            "at": now,
                            "source": source,
                            "status": status,
                            "detail": detail[:2000],
                            "dedupe_key": dedupe_key[:200],
                        }
                    ],
                )
        except IntegrityError:
            return "duplicate"
        if notice.status in (NoticeStatus.delivered, NoticeStatus.failed):
            return "kept-terminal"  # a late 'sent'/'processed' must not undo 'delivered'
        if not is_terminal(source, status):
            return "recorded"
        failed = is_failure(source, status)
        values: dict[str, Any] = (
            {"status": NoticeStatus.failed, "last_error": f"{source}: {status} {detail}".strip()}
            if failed
            else {"status": NoticeStatus.delivered, "delivered_at": now}
        )
        conn.execute(update(n).where(n.c.id == notice.id).values(**values))
    if failed:
        escalate_failure(
            engine, notice, now, f"{source} reported {status}: {detail}".strip(), settings
        )
        return "failed-escalated"
    return "delivered"


@router.post("/twilio/status")
async def twilio_status(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    form = await request.form()
    url = settings.public_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    signature = request.headers.get("X-Twilio-Signature", "")
    if not settings.twilio_auth_token or not verify_twilio_signature(
        settings.twilio_auth_token, url, form, signature
    ):
        return JSONResponse({"error": "signature not valid"}, status_code=403)
    status = str(form.get("MessageStatus") or form.get("SmsStatus") or "").lower()
    sid = str(form.get("MessageSid") or form.get("SmsSid") or "")
    error_code = str(form.get("ErrorCode") or "")
    if not status or not sid:
        return JSONResponse({"error": "MessageStatus and MessageSid are required"}, status_code=400)
    outcome = record_receipt(
        request.app.state.engine,
        settings,
        source="twilio",
        notice_public_id=request.query_params.get("notice"),
        provider_message_id=sid,
        status=status,
        detail=f"error {error_code}" if error_code else "",
        dedupe_key=f"twilio:{sid}:{status}",
        now=_now(request),
    )
    return JSONResponse({"result": outcome})


@router.post("/sendgrid/events")
async def sendgrid_events(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    raw = await request.body()
    if not settings.sendgrid_webhook_public_key or not verify_sendgrid_signature(
        settings.sendgrid_webhook_public_key,
        raw,
        request.headers.get(SENDGRID_SIGNATURE, ""),
        request.headers.get(SENDGRID_TIMESTAMP, ""),
        now=_now(request).timestamp(),
    ):
        return JSONResponse({"error": "signature not valid"}, status_code=403)
    try:
        events = json.loads(raw)
    except ValueError:
        return JSONResponse({"error": "body must be a JSON array of events"}, status_code=400)
    if not isinstance(events, list):
        return JSONResponse({"error": "body must be a JSON array of events"}, status_code=400)
    outcomes: list[str] = []
    for event in events:
        if not isinstance(event, dict):
            outcomes.append("ignored")
            continue
        status = str(event.get("event", "")).lower()
        message_id = str(event.get("sg_message_id", "")).split(".")[0] or None
        dedupe = str(event.get("sg_event_id") or f"{message_id}:{status}:{event.get('timestamp')}")
        detail = str(event.get("reason") or event.get("response") or "")
        outcomes.append(
            record_receipt(
                request.app.state.engine,
                settings,
                source="sendgrid",
                notice_public_id=event.get("notice_id"),
                provider_message_id=message_id,
                status=status,
                detail=detail,
                dedupe_key=f"sendgrid:{dedupe}",
                now=_now(request),
            )
        )
    return JSONResponse({"results": outcomes})
