"""Notices: rendering, channel adapters (SendGrid, Twilio, outbox) and dispatch."""
