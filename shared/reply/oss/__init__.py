"""Talks to OSS: conversation history and message claims on the mount."""
