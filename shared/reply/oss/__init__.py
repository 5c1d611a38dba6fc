"""Talks to OSS: history, message claims and the API-quota note on the mount; claims via the OSS API."""
