"""An OSS bucket on loopback for the ``oss2`` client: put, get, delete, list (v2), path-style.

It honours ``x-oss-forbid-overwrite: true`` as OSS does (409 ``FileAlreadyExists``), atomically,
so claims made through the OSS API can be tested from many processes at once. Requests must
carry the STS credentials of ``devstack.fc_context`` (access key in the ``OSS`` authorization
header and the security token).
"""

from __future__ import annotations

import threading
import time
from typing import Dict, Tuple
from urllib.parse import unquote, urlsplit
from xml.sax.saxutils import escape

from devstack.fc_context import Credentials
from devstack.loopback import JsonHandler, LoopbackServer


class FakeOSS(LoopbackServer):
    def __init__(self, bucket: str = "dingbot-local", credentials: Credentials = Credentials(), port: int = 0) -> None:
        super().__init__(_Handler, port)
        self.bucket = bucket
        self.credentials = credentials
        self.objects: Dict[str, Tuple[bytes, float]] = {}
        self.lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return self.url


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(seconds))


class _Handler(JsonHandler):
    server: FakeOSS

    def _error(self, status: int, code: str) -> None:
        body = f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{code}</Message>" \
               f"<RequestId>local</RequestId></Error>".encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-oss-request-id", "local")
        self.end_headers()
        self.wfile.write(body)

    def _reply(self, status: int, body: bytes = b"", content_type: str = "application/octet-stream") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-oss-request-id", "local")
        self.send_header("ETag", '"local"')
        self.end_headers()
        self.wfile.write(body)

    def _key(self) -> str | None:
        """The object key of a path-style request (``/<bucket>/<key>``), or None if it is not ours."""
        creds = self.server.credentials
        authorization = self.headers.get("Authorization") or ""
        if not authorization.startswith(f"OSS {creds.access_key_id}:") or \
                self.headers.get("x-oss-security-token") != creds.security_token:
            self._error(403, "InvalidAccessKeyId")
            return None
        path = unquote(urlsplit(self.path).path)
        prefix = f"/{self.server.bucket}/"
        if not (path + "/").startswith(prefix):
            self._error(404, "NoSuchBucket")
            return None
        return path[len(prefix):]

    def do_PUT(self) -> None:
        data = self.read_body()
        key = self._key()
        if key is None:
            return
        with self.server.lock:
            if self.headers.get("x-oss-forbid-overwrite", "").lower() == "true" and key in self.server.objects:
                return self._error(409, "FileAlreadyExists")
            self.server.objects[key] = (data, time.time())
        self._reply(200)

    def do_GET(self) -> None:
        key = self._key()
        if key is None:
            return
        if key == "":
            return self._list()
        with self.server.lock:
            found = self.server.objects.get(key)
        if found is None:
            return self._error(404, "NoSuchKey")
        self._reply(200, found[0])

    def do_DELETE(self) -> None:
        key = self._key()
        if key is None:
            return
        with self.server.lock:
            self.server.objects.pop(key, None)
        self._reply(204)

    def _list(self) -> None:
        query = self.query()
        prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
        with self.server.lock:
            keys = sorted((k, v[0], v[1]) for k, v in self.server.objects.items() if k.startswith(prefix))
        contents, folders = [], set()
        for key, data, modified in keys:
            rest = key[len(prefix):]
            if delimiter and delimiter in rest:
                folders.add(prefix + rest.split(delimiter, 1)[0] + delimiter)
                continue
            contents.append(f"<Contents><Key>{escape(key)}</Key><LastModified>{_iso(modified)}</LastModified>"
                            f"<ETag>\"local\"</ETag><Type>Normal</Type><Size>{len(data)}</Size>"
                            f"<StorageClass>Standard</StorageClass></Contents>")
        common = "".join(f"<CommonPrefixes><Prefix>{escape(p)}</Prefix></CommonPrefixes>" for p in sorted(folders))
        body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult><Name>{self.server.bucket}</Name>"
                f"<Prefix>{escape(prefix)}</Prefix><MaxKeys>1000</MaxKeys><Delimiter>{escape(delimiter)}</Delimiter>"
                f"<IsTruncated>false</IsTruncated><KeyCount>{len(contents)}</KeyCount>{''.join(contents)}{common}"
                f"</ListBucketResult>").encode("utf-8")
        self._reply(200, body, "application/xml")
