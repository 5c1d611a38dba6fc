"""Where a URL that came from outside may make the function connect.

The reply function runs inside Alibaba Cloud with the function role's credentials one request
away (the metadata service at ``100.100.100.200``) and, in a VPC, next to private services. A
URL from a message, a web page or an API answer is parsed once, with the parser the HTTP client
uses (``requests`` prepares it, ``urllib3`` splits it); its host is resolved once, and every
address must be public: loopback, private, link-local (``169.254.0.0/16``), CGNAT and shared
space (``100.64.0.0/10``, where the metadata service lives), multicast and reserved addresses
are refused in every spelling (IPv6, IPv4-mapped IPv6, decimal or octal IPv4, which the
resolver turns into the address they mean). User info and schemes other than HTTP(S) are
refused. ``allow`` names hosts (``host`` or ``host:port``) trusted as they are: the loopback
services of the local stack and the tests.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Callable, List, NamedTuple, Sequence, Tuple

import requests
from urllib3.util import Url, parse_url

from shared.common.errors import DingbotError

Resolve = Callable[[str, int], List[str]]


class Refused(DingbotError):
    """The URL may not be fetched; the message says why (for the log)."""


class Target(NamedTuple):
    """A URL that passed the checks, with the public addresses its host resolved to: connect to those (none
    for an allowed host, which is connected to by name)."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: Tuple[str, ...]


def resolve(host: str, port: int) -> List[str]:
    try:
        return sorted({info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})
    except (socket.gaierror, UnicodeError) as exc:
        raise Refused(f"{host} does not resolve ({exc})") from None


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def parse_once(url: str) -> Tuple[str, Url]:
    """The URL as the HTTP client will send it (``requests`` prepares it) and its parts as ``urllib3`` splits
    it: checks look at exactly what is sent. Raises ``ValueError``."""
    prepared = requests.models.PreparedRequest()
    try:
        prepared.prepare_url(url, None)
        return prepared.url, parse_url(prepared.url)
    except (requests.RequestException, ValueError) as exc:
        raise ValueError(type(exc).__name__) from None


def check_url(url: str, *, allow: Sequence[str] = (), resolver: Resolve = resolve) -> Target:
    """The parsed, resolved target of ``url``; raises ``Refused``."""
    try:
        prepared_url, parts = parse_once(url)
    except ValueError as exc:
        raise Refused(f"the URL does not parse ({exc})") from None
    scheme = (parts.scheme or "").lower()
    if scheme not in ("http", "https"):
        raise Refused(f"scheme {scheme or '?'} is not http(s)")
    if parts.auth is not None:
        raise Refused("the URL carries user info")
    host = (parts.host or "").lower().strip("[]")
    if not host:
        raise Refused("the URL has no host")
    port = parts.port or (443 if scheme == "https" else 80)
    if host in allow or f"{host}:{port}" in allow:
        return Target(prepared_url, scheme, host, port, ())
    addresses = tuple(resolver(host, port))
    private = [address for address in addresses if not is_public(address)]
    if not addresses or private:
        raise Refused(f"{host} resolves to a non-public address ({', '.join(private) or 'none'})")
    return Target(prepared_url, scheme, host, port, addresses)
