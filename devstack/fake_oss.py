"""An OSS bucket on loopback for the ``oss2`` client: put, get, delete, list (v2), versioning, path-style.

It honours ``x-oss-forbid-overwrite: true`` as OSS does (409 ``FileAlreadyExists``), atomically,
so claims made through the OSS API can be tested from many processes at once, and, as OSS does,
ignores it while the bucket's versioning is enabled or suspended ("防止覆盖同名文件").

Every request must be signed V4 (``OSS4-HMAC-SHA256``) with the STS credentials of
``devstack.fc_context`` for the bucket's region: the signature is recomputed from the request as
OSS's "在Header中包含V4签名" describes it, and a V1 signature (``OSS ak:sig``) is refused with
403 as OSS refuses it for accounts since 2025-03 and buckets since 2025-09 (EC 0002-00000080).
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import threading
import time
from typing import Dict, Optional, Tuple
from urllib.parse import quote, unquote, unquote_plus, urlsplit
from xml.sax.saxutils import escape

from devstack.fc_context import Credentials
from devstack.loopback import JsonHandler, LoopbackServer

V4 = "OSS4-HMAC-SHA256"
ALWAYS_SIGNED = ("content-type", "content-md5")
MAX_CLOCK_SKEW_SECONDS = 15 * 60


class FakeOSS(LoopbackServer):
    """``versioning``: "" (never turned on), "Enabled" or "Suspended"."""

    def __init__(self, bucket: str = "dingbot-local", credentials: Credentials = Credentials(), port: int = 0,
                 region: str = "cn-local", versioning: str = "") -> None:
        super().__init__(_Handler, port)
        self.bucket = bucket
        self.credentials = credentials
        self.region = region
        self.versioning = versioning
        self.objects: Dict[str, Tuple[bytes, float]] = {}
        self.refused: Dict[str, int] = {}
        self.page_size = 1000  # tests make it small to see listings continue page after page
        self.lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return self.url


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(seconds))


def _v4_encode(text: str, keep_slash: bool) -> str:
    return quote(text, safe="-_.~" + ("/" if keep_slash else ""))


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def _authorization_fields(header: str) -> Dict[str, str]:
    """``Credential``, ``AdditionalHeaders`` and ``Signature`` of a V4 Authorization header."""
    fields = {}
    for item in header[len(V4):].split(","):
        name, _, value = item.strip().partition("=")
        fields[name] = value
    return fields


def v4_signature(secret: str, method: str, raw_path: str, raw_query: str, headers: Dict[str, str],
                 additional: Tuple[str, ...], date_time: str, region: str) -> str:
    """The V4 signature of a request as OSS computes it: canonical request, string to sign, and the
    signing key derived from the secret through date, region, product and ``aliyun_v4_request``."""
    params = []
    for item in filter(None, raw_query.split("&")):
        name, _, value = item.partition("=")
        params.append((_v4_encode(unquote_plus(name), False), _v4_encode(unquote_plus(value), False)))
    query = "&".join(f"{k}={v}" if v else k for k, v in sorted(params))
    lowered = {k.lower(): v.strip() for k, v in headers.items()}
    signed = sorted(k for k in lowered if k.startswith("x-oss-") or k in ALWAYS_SIGNED or k in additional)
    canonical = "\n".join([method, _v4_encode(unquote(raw_path), True), query,
                           "".join(f"{k}:{lowered[k]}\n" for k in signed), ";".join(sorted(additional)),
                           lowered.get("x-oss-content-sha256", "UNSIGNED-PAYLOAD")])
    scope = f"{date_time[:8]}/{region}/oss/aliyun_v4_request"
    to_sign = "\n".join([V4, date_time, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()])
    key = f"aliyun_v4{secret}".encode("utf-8")
    for step in (date_time[:8], region, "oss", "aliyun_v4_request"):
        key = _hmac(key, step)
    return hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


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

    def _refuse(self, status: int, code: str) -> None:
        with self.server.lock:
            self.server.refused[code] = self.server.refused.get(code, 0) + 1
        self._error(status, code)

    def _signature_problem(self) -> Optional[Tuple[int, str]]:
        """Why OSS would refuse this request's signature, or None."""
        server, creds = self.server, self.server.credentials
        authorization = self.headers.get("Authorization") or ""
        if not authorization.startswith(V4 + " "):
            return 403, "AccessDenied"  # V1 ("OSS ak:sig") is no longer accepted
        fields = _authorization_fields(authorization)
        scope = fields.get("Credential", "").split("/")
        date_time = self.headers.get("x-oss-date") or ""
        if len(scope) != 5 or scope[0] != creds.access_key_id or \
                self.headers.get("x-oss-security-token") != creds.security_token:
            return 403, "InvalidAccessKeyId"
        if scope[1] != date_time[:8] or scope[2:] != [server.region, "oss", "aliyun_v4_request"]:
            return 400, "InvalidArgument"  # the scope names another day, region or product
        try:
            skew = abs(time.time() - calendar.timegm(time.strptime(date_time, "%Y%m%dT%H%M%SZ")))
        except ValueError:
            return 403, "AccessDenied"
        if skew > MAX_CLOCK_SKEW_SECONDS:
            return 403, "RequestTimeTooSkewed"
        additional = tuple(filter(None, fields.get("AdditionalHeaders", "").lower().split(";")))
        parts = urlsplit(self.path)
        expected = v4_signature(creds.access_key_secret, self.command, parts.path, parts.query,
                                dict(self.headers.items()), additional, date_time, server.region)
        if not hmac.compare_digest(expected, fields.get("Signature", "")):
            return 403, "SignatureDoesNotMatch"
        return None

    def _key(self) -> str | None:
        """The object key of a path-style request (``/<bucket>/<key>``), or None if it is not ours."""
        problem = self._signature_problem()
        if problem:
            self._refuse(*problem)
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
            forbid = self.headers.get("x-oss-forbid-overwrite", "").lower() == "true" and not self.server.versioning
            if forbid and key in self.server.objects:
                return self._error(409, "FileAlreadyExists")
            self.server.objects[key] = (data, time.time())
        self._reply(200)

    def do_GET(self) -> None:
        key = self._key()
        if key is None:
            return
        if key == "" and "versioning" in self.query_names():
            status = f"<Status>{self.server.versioning}</Status>" if self.server.versioning else ""
            return self._reply(200, f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><VersioningConfiguration>{status}"
                                    f"</VersioningConfiguration>".encode(), "application/xml")
        if key == "":
            return self._list()
        with self.server.lock:
            found = self.server.objects.get(key)
        if found is None:
            return self._error(404, "NoSuchKey")
        self._reply(200, found[0])

    def query_names(self) -> Tuple[str, ...]:
        return tuple(unquote(item.partition("=")[0]) for item in urlsplit(self.path).query.split("&") if item)

    def do_DELETE(self) -> None:
        key = self._key()
        if key is None:
            return
        with self.server.lock:
            self.server.objects.pop(key, None)
        self._reply(204)

    def _list(self) -> None:
        """ListObjectsV2, a page at a time: at most ``max-keys`` (or the server's ``page_size``) objects and
        folders, continued after ``continuation-token``."""
        query = self.query()
        prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
        after = query.get("continuation-token", "")
        size = min(int(query.get("max-keys") or 1000), self.server.page_size)
        with self.server.lock:
            keys = sorted((k, v[0], v[1]) for k, v in self.server.objects.items() if k.startswith(prefix))
        items = {}
        for key, data, modified in keys:
            rest = key[len(prefix):]
            if delimiter and delimiter in rest:
                folder = prefix + rest.split(delimiter, 1)[0] + delimiter
                items[folder] = f"<CommonPrefixes><Prefix>{escape(folder)}</Prefix></CommonPrefixes>"
                continue
            items[key] = (f"<Contents><Key>{escape(key)}</Key><LastModified>{_iso(modified)}</LastModified>"
                          f"<ETag>\"local\"</ETag><Type>Normal</Type><Size>{len(data)}</Size>"
                          f"<StorageClass>Standard</StorageClass></Contents>")
        names = [name for name in sorted(items) if name > after]
        page, truncated = names[:size], len(names) > size
        more = f"<NextContinuationToken>{escape(page[-1])}</NextContinuationToken>" if truncated else ""
        body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult><Name>{self.server.bucket}</Name>"
                f"<Prefix>{escape(prefix)}</Prefix><MaxKeys>{size}</MaxKeys><Delimiter>{escape(delimiter)}</Delimiter>"
                f"<IsTruncated>{str(truncated).lower()}</IsTruncated><KeyCount>{len(page)}</KeyCount>{more}"
                f"{''.join(items[name] for name in page)}</ListBucketResult>").encode("utf-8")
        self._reply(200, body, "application/xml")
