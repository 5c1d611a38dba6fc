"""Where a URL that came from outside may make the function connect.

The reply function runs inside Alibaba Cloud with the function role's credentials one request
away (the metadata service at ``100.100.100.200``) and, in a VPC, next to private services. A
URL from a message, a web page or an API answer is parsed once, with the parser the HTTP client
uses (``requests`` prepares it, ``urllib3`` splits it); its host is resolved once, and every
address must be public: loopback, private, link-local (``169.254.0.0/16``), CGNAT and shared
space (``100.64.0.0/10``, where the metadata service lives), multicast and reserved addresses
are refused in every spelling: decimal or octal IPv4, which the resolver turns into the address
they mean, and every IPv6 form that carries an IPv4 address a router or translator would reach
(``embedded_ipv4``). User info and schemes other than HTTP(S) are refused. ``allow`` names hosts
(``host`` or ``host:port``) trusted as they are: the loopback services of the local stack and the
tests.

A name may resolve to several addresses. All of them must be public (a name that mixes a public
and a private address is refused: the one connected to could be either), and the connection tries
them one by one in the resolver's order, IPv4 first where the function has no IPv6 route, as FC
without a VPC has none (``connect_any``).
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from typing import Callable, List, NamedTuple, Sequence, Tuple

from shared.common.errors import DingbotError
from shared.reply.urls import parse_once

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


# RFC 6052's well-known NAT64 prefix carries the IPv4 address in its last 32 bits; the local-use prefix of
# RFC 8215 is a site's own translator, never a public destination.
NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")
NAT64_LOCAL_USE = ipaddress.ip_network("64:ff9b:1::/48")
# RFC 4291's IPv4-compatible addresses (::a.b.c.d) are deprecated: no public host has one, while a stack
# that still knows them sends them to the IPv4 address. RFC 2765's IPv4-translated ones lead to theirs.
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
# RFC 5214: an ISATAP interface identifier is 0000:5efe or 0200:5efe followed by the IPv4 address.
ISATAP_MARKERS = (0x00005EFE, 0x02005EFE)
IPV6_PROBE = ("2400:3200::1", 53)  # any global IPv6 address: a UDP connect only asks the routing table


def _ordered(addresses: Sequence[str], ipv6_routed: bool) -> List[str]:
    """The resolver's order without repeats; IPv4 first when IPv6 has no route (those would only fail)."""
    unique = list(dict.fromkeys(addresses))
    if ipv6_routed:
        return unique
    return [a for a in unique if ":" not in a] + [a for a in unique if ":" in a]


@functools.lru_cache(maxsize=1)
def has_ipv6_route() -> bool:
    """Whether this instance can reach IPv6 at all (asked once per instance; nothing is sent)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.connect(IPV6_PROBE)
        return True
    except OSError:
        return False


def resolve(host: str, port: int) -> List[str]:
    """Every address of ``host``, in the order to try them."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Refused(f"{host} does not resolve ({exc})") from None
    return _ordered([info[4][0] for info in infos], has_ipv6_route())


def embedded_ipv4(ip: ipaddress.IPv6Address) -> List[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address leads to: IPv4-mapped, -translated and -compatible, NAT64, 6to4,
    Teredo (its server and its client) and ISATAP."""
    found = []
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip in IPV4_TRANSLATED or ip in IPV4_COMPATIBLE or ip in NAT64_WELL_KNOWN:
        found.append(low32)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    if (int(ip) >> 32) & 0xFFFFFFFF in ISATAP_MARKERS:
        found.append(low32)
    return found


def is_public(address: str) -> bool:
    """Whether ``address``, and every IPv4 address it carries, is a public unicast address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv4Address):
        return ip.is_global and not ip.is_multicast
    if ip in NAT64_LOCAL_USE or ip in IPV4_COMPATIBLE:
        return False
    embedded = embedded_ipv4(ip)
    if embedded:
        return all(is_public(str(v4)) for v4 in embedded)
    return ip.is_global and not ip.is_multicast


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


def connect_any(target: Target, timeout: float) -> socket.socket:
    """A TCP connection to the first of the target's checked addresses that answers (its name, for an
    allowed host); raises the last ``OSError`` when none does."""
    *first, final = target.addresses or (target.host,)
    for address in first:
        try:
            return socket.create_connection((address, target.port), timeout)
        except OSError:
            continue
    return socket.create_connection((final, target.port), timeout)
