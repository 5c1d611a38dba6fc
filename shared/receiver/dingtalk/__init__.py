"""Talks to DingTalk: the robot callback's signature and body."""
