"""A loopback SendGrid v3 Mail Send API: ``POST /v3/mail/send``.

Checks what SendGrid checks before accepting a message (bearer key, JSON body, from,
personalizations[].to[].email, subject, non-empty content, string custom_args) and
answers like it: ``202`` with an empty body and ``X-Message-Id``, or a 4xx with
``{"errors": [{"message", "field", "help"}]}``. Messages taken from SendGrid's
documented error responses; accepted messages are kept in :attr:`SendGridFake.messages`
by message id so a test can later post Event Webhook events for them. Attachments are
checked as SendGrid checks them (base64 ``content``, a ``filename``) and
:meth:`SendGridFake.attachments` decodes them, so a test can open the file sent.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from typing import Any

from tests.fakes import FakeResponse, LoopbackFake, RecordedRequest, encode_body

__all__ = ["SendGridFake"]

_DEFAULT_MESSAGES = {
    400: "Bad Request",
    401: "The provided authorization grant is invalid, expired, or revoked",
    403: "access forbidden",
    404: "not found",
    413: "The JSON payload you have included in your request is too large.",
    429: "too many requests",
    500: "internal server error",
    502: "bad gateway",
    503: "service unavailable",
}


def _errors(*items: tuple[str, str | None]) -> dict[str, Any]:
    return {"errors": [{"message": m, "field": f, "help": None} for m, f in items]}


def _valid_address(value: Any) -> bool:
    # SendGrid's check is stricter; this catches the mistakes our code could make
    # (empty, missing, not an address at all) without rejecting real addresses.
    if not isinstance(value, str) or value.count("@") != 1:
        return False
    local, domain = value.split("@")
    return bool(local) and "." in domain and " " not in value


def _attachment_problems(attachments: Any) -> list[tuple[str, str | None]]:
    """SendGrid's checks on ``attachments[]``: content base64, a file name, a known disposition."""
    if not isinstance(attachments, list):
        return [("Invalid type. Expected: array.", "attachments")]
    problems: list[tuple[str, str | None]] = []
    for index, item in enumerate(attachments):
        where = f"attachments.{index}"
        if not isinstance(item, dict):
            problems.append(("Invalid type. Expected: object.", where))
            continue
        content = item.get("content")
        try:
            valid = isinstance(content, str) and bool(base64.b64decode(content, validate=True))
        except (binascii.Error, ValueError):
            valid = False
        if not valid:
            problems.append(("The attachment content must be base64 encoded.", f"{where}.content"))
        if not isinstance(item.get("filename"), str) or not item["filename"]:
            problems.append(("The attachment filename parameter is required.", f"{where}.filename"))
        if item.get("disposition") not in (None, "attachment", "inline"):
            problems.append(
                ("The disposition must be either 'inline' or 'attachment'.", f"{where}.disposition")
            )
    return problems


class SendGridFake(LoopbackFake):
    """SendGrid Mail Send over loopback. ``api_key`` is the only key it accepts."""

    provider = "sendgrid"

    def __init__(self, api_key: str = "SG.fake-key.for-tests", *, record: bool = True) -> None:
        super().__init__(record=record)
        self.api_key = api_key
        self.messages: dict[str, dict[str, Any]] = {}

    def attachments(self) -> list[dict[str, Any]]:
        """Every attachment accepted, decoded: to, filename, type, disposition, content."""
        with self._lock:
            messages = list(self.messages.values())
        out = []
        for payload in messages:
            to = payload["personalizations"][0]["to"][0]["email"]
            for item in payload.get("attachments") or []:
                out.append(
                    {
                        "to": to,
                        "filename": item["filename"],
                        "type": item.get("type"),
                        "disposition": item.get("disposition"),
                        "content": base64.b64decode(item["content"], validate=True),
                    }
                )
        return out

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.messages.clear()

    def _parse(self, headers: dict[str, str], raw: bytes) -> Any:
        if not raw:
            return None
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return None

    def _fault_response(self, status: int, headers: dict[str, str], body: Any) -> FakeResponse:
        merged = {"Content-Type": "application/json"}
        if status == 429:
            # SendGrid documents these three on every response; Retry-After is not
            # among them, so a test adds it explicitly when it wants it.
            merged.update(
                {
                    "X-RateLimit-Limit": "600",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": str(int(time.time()) + 1),
                }
            )
        merged.update(headers)
        if body is None:
            body = _errors((_DEFAULT_MESSAGES.get(status, "error"), None))
        return FakeResponse(status, merged, encode_body(body))

    def handle(self, request: RecordedRequest) -> FakeResponse:
        if request.path != "/v3/mail/send":
            return FakeResponse.json(404, _errors(("not found", None)))
        if request.method != "POST":
            return FakeResponse.json(405, _errors(("method not allowed", None)))
        auth = request.header("Authorization")
        if not auth:
            return FakeResponse.json(401, _errors(("authorization required", None)))
        if auth != f"Bearer {self.api_key}" or self.credentials_revoked:
            return FakeResponse.json(401, _errors((_DEFAULT_MESSAGES[401], None)))
        payload = request.body
        if not isinstance(payload, dict):
            return FakeResponse.json(
                400,
                _errors(("Bad Request", None)),
            )
        problems = self._validate(payload)
        if problems:
            return FakeResponse.json(400, _errors(*problems))
        message_id = secrets.token_urlsafe(16)[:22]
        if self.record:
            with self._lock:
                self.messages[message_id] = payload
        return FakeResponse(202, {"X-Message-Id": message_id}, b"")

    def _validate(self, payload: dict[str, Any]) -> list[tuple[str, str | None]]:
        problems: list[tuple[str, str | None]] = []
        sender = payload.get("from")
        if not isinstance(sender, dict) or not _valid_address(sender.get("email")):
            problems.append(("The from email does not contain a valid address.", "from.email"))
        personalizations = payload.get("personalizations")
        if not isinstance(personalizations, list) or not personalizations:
            problems.append(
                (
                    "The personalizations field is required and must have at least one "
                    "personalization.",
                    "personalizations",
                )
            )
            personalizations = []
        for index, item in enumerate(personalizations):
            to = item.get("to") if isinstance(item, dict) else None
            if not isinstance(to, list) or not to:
                problems.append(
                    (
                        "The to array is required for all personalization objects, and must "
                        "have at least one email object with a valid email address.",
                        f"personalizations.{index}.to",
                    )
                )
                continue
            for position, recipient in enumerate(to):
                email = recipient.get("email") if isinstance(recipient, dict) else None
                if not _valid_address(email):
                    problems.append(
                        (
                            "Does not contain a valid address.",
                            f"personalizations.{index}.to.{position}.email",
                        )
                    )
        has_template = bool(payload.get("template_id"))
        every_personalization_has_subject = bool(personalizations) and all(
            isinstance(p, dict) and p.get("subject") for p in personalizations
        )
        if (
            not payload.get("subject")
            and not has_template
            and not every_personalization_has_subject
        ):
            problems.append(
                (
                    "The subject is required. You can get around this requirement if you use a "
                    "template with a subject defined or if every personalization has a subject "
                    "defined.",
                    "subject",
                )
            )
        content = payload.get("content")
        if not has_template:
            if not isinstance(content, list) or not content:
                problems.append(
                    (
                        "Unless a valid template_id is provided, the content parameter is "
                        "required. There must be at least one defined content block.",
                        "content",
                    )
                )
            else:
                for index, block in enumerate(content):
                    value = block.get("value") if isinstance(block, dict) else None
                    if not isinstance(value, str) or not value:
                        problems.append(
                            (
                                "The content value must be a string at least one character "
                                "in length.",
                                f"content.{index}.value",
                            )
                        )
        attachments = payload.get("attachments")
        if attachments is not None:
            problems.extend(_attachment_problems(attachments))
        custom_args = payload.get("custom_args")
        if custom_args is not None:
            if not isinstance(custom_args, dict):
                problems.append(("Invalid type. Expected: object.", "custom_args"))
            else:
                for key, value in custom_args.items():
                    if not isinstance(value, str):
                        problems.append(
                            (
                                f"Invalid type. Expected: string, given: {type(value).__name__}.",
                                f"custom_args.{key}",
                            )
                        )
        return problems
