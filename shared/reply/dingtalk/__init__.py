"""Talks to DingTalk: the session webhook and the OpenAPI (access token, cards)."""
