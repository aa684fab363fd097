"""The no-keys channel: the message is kept in the outbox table and shown in the UI.

With no SendGrid or Twilio keys configured (the embedded default), casework still
runs every clock and every notice; the rendered text is stored on the notice row
(the dispatcher writes it there for every channel) and logged without personal data.
"""

from __future__ import annotations

import logging

from casework.notify.base import OutgoingMessage, SendResult

log = logging.getLogger("casework.outbox")


class OutboxChannel:
    name = "outbox"

    def __init__(self, channel: str) -> None:
        self.channel = channel

    def send(self, message: OutgoingMessage) -> SendResult:
        log.info("outbox %s notice=%s", message.channel, message.notice_id)
        return SendResult(provider="outbox", provider_message_id=f"outbox-{message.notice_id}")
