"""Talks to Function Compute: its HTTP entry forms and its invoke API."""
