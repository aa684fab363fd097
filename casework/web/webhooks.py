"""Delivery receipts from Twilio and SendGrid: verify, store, answer at once.

Both are verified before anything is kept: Twilio's X-Twilio-Signature against
the configured public URL (behind a proxy ``request.url`` is the internal one),
SendGrid's ECDSA signature over the raw body with a replay window. Forged or
unsigned requests get 403 and change nothing; a body over the configured size is
refused with 413 before it is read.

A verified request is stored raw in one insert and answered 202; the worker
applies it (``casework.notify.receipts.apply_stored_receipts``). Nothing here
blocks the event loop: the body is streamed in, and the signature check (CPU) and
the insert (database) run in the thread pool.
"""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from casework.config import Settings
from casework.notify.receipts import (
    store_batch,
    twilio_receipt_fields,
    verify_sendgrid_signature,
    verify_twilio_signature,
)

router = APIRouter(prefix="/webhooks", tags=["webhooks"], include_in_schema=False)

SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


class _TooLarge(Exception):
    pass


def _now(request: Request) -> dt.datetime:
    clock = getattr(request.app.state, "clock", None)
    return clock() if clock is not None else dt.datetime.now(dt.UTC)


async def _bounded_body(request: Request, limit: int) -> bytes:
    """The body, refusing more than ``limit`` bytes without ever holding more.

    A declared Content-Length over the limit is refused before a byte is read; a
    chunked body is counted as it streams and abandoned at the limit.
    """
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large() -> Response:
    return JSONResponse({"error": "body too large"}, status_code=413)


def _forged() -> Response:
    return JSONResponse({"error": "signature not valid"}, status_code=403)


def _accepted(batch_id: int) -> Response:
    return JSONResponse({"result": "accepted", "batch": batch_id}, status_code=202)


@router.post("/twilio/status")
async def twilio_status(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    try:
        raw = await _bounded_body(request, settings.webhook_max_bytes_twilio)
    except _TooLarge:
        return _too_large()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return _forged()
    form = parse_qs(text, keep_blank_values=True)
    url = settings.public_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    signature = request.headers.get("X-Twilio-Signature", "")
    if not settings.twilio_auth_token or not verify_twilio_signature(
        settings.twilio_auth_token, url, form, signature
    ):
        return _forged()
    status, sid, _ = twilio_receipt_fields(form)
    if not status or not sid:
        return JSONResponse({"error": "MessageStatus and MessageSid are required"}, status_code=400)
    batch_id = await run_in_threadpool(
        store_batch, request.app.state.engine, "twilio", text, request.url.query, _now(request)
    )
    return _accepted(batch_id)


def _sendgrid_check(
    settings: Settings, raw: bytes, signature: str, timestamp: str, now: float
) -> str:
    """'ok', 'forged' or 'malformed' (CPU work: run in the thread pool, not the loop)."""
    if not settings.sendgrid_webhook_public_key or not verify_sendgrid_signature(
        settings.sendgrid_webhook_public_key, raw, signature, timestamp, now=now
    ):
        return "forged"
    try:
        events = json.loads(raw)
    except ValueError:
        return "malformed"
    return "ok" if isinstance(events, list) else "malformed"


@router.post("/sendgrid/events")
async def sendgrid_events(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    try:
        raw = await _bounded_body(request, settings.webhook_max_bytes_sendgrid)
    except _TooLarge:
        return _too_large()
    now = _now(request)
    verdict = await run_in_threadpool(
        _sendgrid_check,
        settings,
        raw,
        request.headers.get(SENDGRID_SIGNATURE, ""),
        request.headers.get(SENDGRID_TIMESTAMP, ""),
        now.timestamp(),
    )
    if verdict == "forged":
        return _forged()
    if verdict == "malformed":
        return JSONResponse({"error": "body must be a JSON array of events"}, status_code=400)
    batch_id = await run_in_threadpool(
        store_batch, request.app.state.engine, "sendgrid", raw.decode("utf-8"), "", now
    )
    return _accepted(batch_id)
