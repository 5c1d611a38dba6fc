"""Loopback stand-ins for DingTalk, the FC API and an LLM, used by ``make run`` and the tests.

Nothing here is deployed: the function code runs unchanged against these servers, configured
only through its environment (endpoints and allowed webhook hosts).
"""
