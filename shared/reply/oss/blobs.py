"""Named JSON objects under a prefix: the few operations the history and the claims need.

Two backends with one interface. ``MountBlobs`` uses the OSS mount as files: on FC 3.0 every
instance that shares the mount is another machine, so nothing here may rely on file locks or
on a read-modify-write of one object; writers only ever create objects with names of their
own, or overwrite objects that only they write. ``ApiBlobs`` speaks to the bucket through the
OSS API, whose ``x-oss-forbid-overwrite`` makes ``create`` atomic across instances, which a
mount cannot promise, but only on a bucket that has never had versioning turned on (OSS
"防止覆盖同名文件": the header has no effect while versioning is enabled or suspended).

Requests are signed V4 (``OSS4-HMAC-SHA256``, scoped to the bucket's region): OSS refuses V1
signatures for accounts created since 2025-03 and buckets created since 2025-09 ("V1签名升级为V4
签名指引"). ``oss2`` signs V4 from 2.18.4, so the reply package carries its own ``oss2`` in
place of the 2.16.0 built into FC's python3.10.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Protocol, Tuple

from shared.common.random_ids import random_id

TEMP_PREFIX = ".tmp-"


def encode(document: Dict[str, Any]) -> bytes:
    # Compact: ``indent`` switches json to its pure-Python encoder, several times slower on this hot path.
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def decode(raw: Optional[bytes]) -> Optional[Dict[str, Any]]:
    """The JSON object in ``raw``; None for a missing, half-written or foreign file."""
    if not raw:
        return None
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return document if isinstance(document, dict) else None


class Entry(NamedTuple):
    name: str
    modified: float  # seconds since the epoch


class Blobs(Protocol):
    """Names are relative paths with ``/`` separators; every method raises ``OSError`` when the
    storage cannot be reached."""

    def list(self, prefix: str) -> List[str]:
        """Names directly under ``prefix`` (a folder, ending in ``/``), sorted: objects, and sub-folders
        (without a trailing ``/``)."""

    def entries(self, prefix: str) -> List[Entry]:
        """Like ``list``, with each object's last-modified time (one listing, no reads)."""

    def read(self, name: str) -> Optional[bytes]:
        """The object's bytes, or None when there is no such object."""

    def create(self, name: str, data: bytes) -> bool:
        """Write the object only if no object has that name; False when one already did."""

    def write(self, name: str, data: bytes) -> None:
        """Write the object whole, replacing any object of that name."""

    def delete(self, name: str) -> None:
        """Remove the object; a missing object is not an error."""


class MountBlobs:
    """Files under ``root`` (the OSS mount, or any directory).

    ``write`` goes through a temporary name and a rename, so a reader sees a whole object or
    the old one; ``create`` uses ``O_EXCL``, atomic on one machine. On the OSS mount two
    machines can both "create" the same name within one round trip of each other, which is why
    claims prefer ``ApiBlobs`` when a bucket is configured.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, name: str) -> Path:
        return self.root / name

    def list(self, prefix: str) -> List[str]:
        try:
            names = os.listdir(self._path(prefix))
        except FileNotFoundError:
            return []
        return sorted(prefix + name for name in names if not name.startswith(TEMP_PREFIX))

    def entries(self, prefix: str) -> List[Entry]:
        try:
            with os.scandir(self._path(prefix)) as scan:
                found = [Entry(prefix + e.name, e.stat().st_mtime) for e in scan if not e.name.startswith(TEMP_PREFIX)]
        except FileNotFoundError:
            return []
        return sorted(found)

    def read(self, name: str) -> Optional[bytes]:
        try:
            return self._path(name).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            return None

    def create(self, name: str, data: bytes) -> bool:
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return True

    def write(self, name: str, data: bytes) -> None:
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f"{TEMP_PREFIX}{random_id()}-{path.name}")
        try:
            # No fsync: on the OSS mount close() uploads the whole object, and FC's local disk does
            # not outlive the instance.
            temp.write_bytes(data)
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise

    def delete(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(name).unlink()


class ApiBlobs:
    """Objects in an OSS bucket through the OSS API, under ``prefix``."""

    def __init__(self, bucket: Any, prefix: str) -> None:
        self.bucket = bucket
        self.prefix = prefix

    @classmethod
    def connect(cls, endpoint: str, bucket_name: str, credentials: Any, prefix: str, region: str) -> "ApiBlobs":
        """A bucket client signed V4 for ``region`` with the function role's STS credentials (from FC's context)."""
        import oss2

        auth = oss2.StsAuth(credentials.access_key_id, credentials.access_key_secret, credentials.security_token,
                            auth_version=oss2.AUTH_VERSION_4)
        return cls(oss2.Bucket(auth, endpoint, bucket_name, connect_timeout=5, region=region), prefix)

    def versioning(self) -> str:
        """The bucket's versioning state: "" (never turned on), "Enabled" or "Suspended"."""
        result = self._call("get_bucket_versioning")
        return (getattr(result, "status", None) or "") if result is not None else ""

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        import oss2

        try:
            return getattr(self.bucket, method)(*args, **kwargs)
        except oss2.exceptions.NoSuchKey:
            return None
        except oss2.exceptions.OssError as exc:
            if getattr(exc, "status", None) == 409 and method == "put_object":
                raise FileExistsError(args[0]) from None
            raise OSError(f"OSS {method} failed: HTTP {exc.status} {exc.code}") from None
        except oss2.exceptions.RequestError as exc:
            raise OSError(f"OSS {method} failed: {type(exc).__name__}") from None

    def _listing(self, prefix: str) -> Tuple[List[Entry], List[str]]:
        """Objects and sub-folders directly under ``prefix``, every page of them."""
        objects: List[Entry] = []
        folders: List[str] = []
        token = ""
        while True:
            result = self._call("list_objects_v2", prefix=self.prefix + prefix, delimiter="/", max_keys=1000,
                                continuation_token=token)
            if result is None:
                break
            objects += [Entry(o.key[len(self.prefix):], float(o.last_modified)) for o in result.object_list]
            folders += [p[len(self.prefix):].rstrip("/") for p in result.prefix_list]
            token = result.next_continuation_token
            if not result.is_truncated or not token:
                break
        return sorted(objects), sorted(folders)

    def list(self, prefix: str) -> List[str]:
        objects, folders = self._listing(prefix)
        return sorted([entry.name for entry in objects] + folders)

    def entries(self, prefix: str) -> List[Entry]:
        return self._listing(prefix)[0]

    def read(self, name: str) -> Optional[bytes]:
        result = self._call("get_object", self.prefix + name)
        return None if result is None else result.read()

    def create(self, name: str, data: bytes) -> bool:
        try:
            self._call("put_object", self.prefix + name, data, headers={"x-oss-forbid-overwrite": "true"})
        except FileExistsError:
            return False
        return True

    def write(self, name: str, data: bytes) -> None:
        self._call("put_object", self.prefix + name, data)

    def delete(self, name: str) -> None:
        self._call("delete_object", self.prefix + name)
