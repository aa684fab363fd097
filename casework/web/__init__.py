"""The web edge: adviser pages, provider portal, REST API and delivery webhooks."""
