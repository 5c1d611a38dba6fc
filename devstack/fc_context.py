"""The ``context`` object FC passes to a handler, with the attributes the bundle reads."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Credentials:
    access_key_id: str = "STS.local-ak"
    access_key_secret: str = "local-sk-secret"
    security_token: str = "local-sts-token"


@dataclass(frozen=True)
class FunctionMeta:
    name: str
    handler: str = "index.handler"
    memory: int = 512
    timeout: int = 60


@dataclass(frozen=True)
class FCContext:
    function: FunctionMeta
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    credentials: Credentials = field(default_factory=Credentials)
    region: str = "cn-local"
    account_id: str = "1234567890"
    service: object = None
