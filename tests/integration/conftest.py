"""Fixtures the integration tests share: the loopback fakes of SendGrid and Twilio."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.sendgrid_server import SendGridFake
from tests.fakes.twilio_server import TwilioFake


@pytest.fixture
def sendgrid_fake() -> Iterator[SendGridFake]:
    """SendGrid's mail send API on loopback, for one test."""
    with SendGridFake() as fake:
        yield fake


@pytest.fixture
def twilio_fake() -> Iterator[TwilioFake]:
    """Twilio's Messages API on loopback, for one test."""
    with TwilioFake() as fake:
        yield fake
