"""The address guard: an IPv6 address that carries a private IPv4 address is private, and a name with several
addresses is connected to address by address, each one checked."""

import http.server
import threading

import pytest

from shared.reply.netguard import Refused, Target, _ordered, check_url, connect_any, embedded_ipv4, is_public, resolve
from shared.reply.tools.base import ToolError
from shared.reply.tools.fetch import fetch


@pytest.mark.parametrize("address, public", [
    ("2002:a9fe:a9fe::1", False),  # 6to4 of 169.254.169.254
    ("2002:6464:64c8::1", False),  # 6to4 of 100.100.100.200, the metadata service
    ("2002:0a00:0001::1", False),  # 6to4 of 10.0.0.1
    ("2002:0808:0808::1", True),  # 6to4 of 8.8.8.8
    ("64:ff9b::6464:64c8", False),  # NAT64 of 100.100.100.200
    ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
    ("64:ff9b::808:808", True),  # NAT64 of 8.8.8.8
    ("64:ff9b:1::808:808", False),  # RFC 8215 local-use: a site's own translator
    ("::127.0.0.1", False),  # IPv4-compatible
    ("::10.0.0.1", False),
    ("::8.8.8.8", False),  # deprecated form: no public host has one
    ("::ffff:0:a9fe:a9fe", False),  # IPv4-translated (RFC 2765)
    ("::ffff:127.0.0.1", False),  # IPv4-mapped
    ("::ffff:8.8.8.8", True),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),  # Teredo: its client 192.0.2.45 is documentation space
    ("2001:0:4136:e378:8000:63bf:f5ff:fff6", False),  # Teredo client 10.0.0.9 behind a public server
    ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", True),  # Teredo client 8.8.8.8, server 65.54.227.120
    ("2400:3200::5efe:a9fe:a9fe", False),  # ISATAP interface identifier carrying 169.254.169.254
    ("2400:3200::200:5efe:a00:1", False),  # ISATAP (universal bit) carrying 10.0.0.1
    ("2400:3200::1", True),
    ("ff02::1", False),
    ("fe80::1%eth0", False),
], ids=lambda value: str(value))
def test_every_ipv6_form_that_carries_an_ipv4_address_is_judged_by_that_address(address, public):
    assert is_public(address) is public


def test_embedded_addresses_are_unwrapped_exactly():
    import ipaddress

    teredo = embedded_ipv4(ipaddress.IPv6Address("2001:0:4136:e378:8000:63bf:3fff:fdd2"))
    assert [str(a) for a in teredo] == ["65.54.227.120", "192.0.2.45"]
    assert [str(a) for a in embedded_ipv4(ipaddress.IPv6Address("64:ff9b::6464:64c8"))] == ["100.100.100.200"]
    assert embedded_ipv4(ipaddress.IPv6Address("2400:3200::1")) == []


def test_a_url_naming_an_embedded_private_address_is_refused_before_any_connection():
    for url in ("http://[2002:a9fe:a9fe::1]/latest/meta-data/", "http://[64:ff9b::6464:64c8]/",
                "http://[::127.0.0.1]:8000/"):
        with pytest.raises(Refused, match="non-public"):
            check_url(url)


def test_a_name_whose_addresses_include_one_embedded_private_address_is_refused():
    with pytest.raises(Refused, match="2002:a9fe:a9fe::1"):
        check_url("https://dual.example/", resolver=lambda host, port: ["93.184.216.34", "2002:a9fe:a9fe::1"])


def test_addresses_keep_the_resolvers_order_and_ipv4_comes_first_without_an_ipv6_route():
    resolved = ["2400:3200::1", "203.0.113.7", "2400:3200::1", "93.184.216.34"]
    assert _ordered(resolved, ipv6_routed=True) == ["2400:3200::1", "203.0.113.7", "93.184.216.34"]
    assert _ordered(resolved, ipv6_routed=False) == ["203.0.113.7", "93.184.216.34", "2400:3200::1"]


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = "<html><body><p>第二个地址回答了。</p></body></html>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def page():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_name_with_several_addresses_is_tried_address_by_address(page):
    # 127.0.0.2 is loopback too but nothing listens there: the connection moves on to the next address.
    target = Target(f"http://dual.example:{page}/", "http", "dual.example", page, ("127.0.0.2", "127.0.0.1"))
    with connect_any(target, 2.0) as sock:
        assert sock.getpeername() == ("127.0.0.1", page)


def test_the_first_address_that_answers_is_used_even_when_later_ones_are_down(page):
    target = Target(f"http://tri.example:{page}/", "http", "tri.example", page, ("127.0.0.2", "127.0.0.1", "127.0.0.3"))
    with connect_any(target, 2.0) as sock:
        assert sock.getpeername() == ("127.0.0.1", page)


def test_when_no_address_answers_the_last_error_is_raised(page):
    target = Target(f"http://dual.example:{page}/", "http", "dual.example", page, ("127.0.0.2", "127.0.0.3"))
    with pytest.raises(ConnectionRefusedError):
        connect_any(target, 2.0)


def test_the_link_reader_connects_to_a_later_address_when_the_first_is_down(page, monkeypatch):
    import shared.reply.tools.fetch as fetch_module

    # The checked target's addresses as a resolver would give them for a public name: the first is down.
    monkeypatch.setattr(fetch_module, "check_url", lambda url, **kwargs: Target(
        url, "http", "dual.example", page, ("127.0.0.2", "127.0.0.1")))
    fetched = fetch(f"http://dual.example:{page}/", max_bytes=1 << 20, seconds=5)
    assert "第二个地址回答了" in fetched.body.decode()


def test_a_refused_address_is_a_tool_error_naming_it():
    with pytest.raises(ToolError, match="non-public"):
        fetch("http://[2002:a9fe:a9fe::1]/", max_bytes=1024, seconds=2)


# --- what the log says, and what a target holds ------------------------------------------------------

def _public(host, port):
    return {"public.example": ["93.184.216.34"], "mixed.example": ["93.184.216.34", "10.0.0.5"]}.get(host, [])


@pytest.mark.parametrize(("url", "reason"), [
    ("ftp://public.example/file", "scheme ftp is not http(s)"),
    ("https://user:pw@public.example/", "the URL carries user info"),
    ("https://mixed.example/", "mixed.example resolves to a non-public address (10.0.0.5)"),
    ("https://nowhere.example/", "nowhere.example resolves to a non-public address (none)"),
    ("http://[::1]:8080/", "::1 resolves to a non-public address (::1)"),
], ids=["scheme", "user-info", "mixed", "no-address", "bracketed-ipv6"])
def test_each_refusal_says_why_in_the_log(url, reason):
    def resolver(host, port):
        return [host] if ":" in host else _public(host, port)

    with pytest.raises(Refused) as refused:
        check_url(url, resolver=resolver)
    assert str(refused.value) == reason


def test_a_url_that_does_not_parse_is_refused_naming_the_parser_error():
    with pytest.raises(Refused) as refused:
        check_url("http://[::1/")
    assert str(refused.value) == "the URL does not parse (InvalidURL)"


def test_a_checked_target_holds_the_prepared_url_the_scheme_the_host_the_default_port_and_its_addresses():
    seen = []

    def resolver(host, port):
        seen.append((host, port))
        return _public(host, port)

    assert check_url("HTTPS://Public.Example/a b", resolver=resolver) == \
        Target("https://public.example/a%20b", "https", "public.example", 443, ("93.184.216.34",))
    assert check_url("http://public.example/", resolver=resolver).port == 80
    assert seen == [("public.example", 443), ("public.example", 80)]


def test_an_allowed_host_is_not_resolved_and_keeps_its_name():
    def resolver(host, port):
        raise AssertionError("an allowed host is connected to by name")

    assert check_url("http://intranet:8080/x", allow=("intranet:8080",), resolver=resolver) == \
        Target("http://intranet:8080/x", "http", "intranet", 8080, ())


def test_a_scoped_link_local_address_is_judged_without_its_zone():
    assert is_public("fe80::1%eth0") is False and is_public("2001:4860:4860::8888%1") is True


def test_the_resolver_gives_each_address_once_for_the_host_asked():
    assert resolve("127.0.0.2", 80) == ["127.0.0.2"]


def test_a_name_that_cannot_be_resolved_is_refused_naming_it():
    with pytest.raises(Refused) as refused:
        resolve("a..b", 80)
    assert str(refused.value).startswith("a..b does not resolve (")
