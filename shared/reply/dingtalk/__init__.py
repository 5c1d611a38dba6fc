"""Talks to DingTalk: session webhook and OpenAPI (token, AI cards, robot messages, message files)."""
