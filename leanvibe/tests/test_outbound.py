"""The guarded outbound HTTP client (``leanvibe/outbound.py``), issue 6 acceptance item 2.

Loopback targets are proven untouched by a real listener there; for every other address class
no packet may leave this machine, so a ``socket.connect`` audit hook proves the refusal came
before any connection attempt.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from leanvibe.outbound import (
    OutboundError,
    OutboundRefused,
    OutboundResponse,
    OutboundTimeout,
    OutboundTooLarge,
    outbound_refused,
    outbound_request,
    outbound_stream,
    outbound_url_check,
)
from leanvibe.tests.outbound_helpers import (
    HttpTestServer,
    connections_recorded,
    endless_body,
    ipv6_loopback_available,
    json_answer,
    loopback_listener,
    redirect_to,
    slow_headers,
    trickling_body,
    write_self_signed_cert,
)

pytestmark = pytest.mark.django_db  # the accounts app audits refusals in the current schema

MIB = 1024 * 1024


@pytest.fixture
def private_refused(settings: Any) -> None:
    settings.OUTBOUND_ALLOW_PRIVATE = False
    settings.OUTBOUND_ALLOWED_NETWORKS = []


@pytest.fixture
def refusals() -> Iterator[list[OutboundRefused]]:
    seen: list[OutboundRefused] = []

    def receiver(sender: Any, *, refusal: OutboundRefused, **kwargs: Any) -> None:
        seen.append(refusal)

    outbound_refused.connect(receiver, weak=False)
    yield seen
    outbound_refused.disconnect(receiver)


@pytest.fixture(scope="module")
def localhost_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_self_signed_cert(tmp_path_factory.mktemp("tls"), dns_names=["localhost"], ips=[])


def _get(url: str, **kwargs: Any) -> OutboundResponse:
    return outbound_request(method="GET", url=url, purpose="test", **kwargs)


def _ok(handler: Any) -> None:
    json_answer(handler, 200, b'{"ok": true}')


# --- address classes ---------------------------------------------------------------------------

LOOPBACK_FORMS = [
    "127.0.0.1",
    "localhost",
    "LOCALHOST",
    "localhost.",
    "127.1",
    "127.0.1",
    "2130706433",
    "0x7f000001",
    "0x7f.1",
    "0177.0.0.1",
    "017700000001",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
]


@pytest.mark.usefixtures("private_refused")
@pytest.mark.parametrize("host", LOOPBACK_FORMS)
def test_every_loopback_form_is_refused_and_nothing_reaches_the_listener(host, refusals):
    with loopback_listener("127.0.0.1") as listener, connections_recorded() as attempts:
        with pytest.raises(OutboundRefused) as refused:
            _get(f"https://{host}:{listener.port}/metadata?token=secret")
        assert listener.connections() == 0
    assert attempts.connects == []
    assert refused.value.rule == "loopback"
    assert refused.value.status == 400 and refused.value.code == "outbound_url_refused"
    assert "loopback address" in refused.value.detail and "secret" not in refused.value.detail
    assert [r.rule for r in refusals] == ["loopback"]


@pytest.mark.usefixtures("private_refused")
def test_other_loopback_addresses_are_refused(refusals):
    with loopback_listener("127.0.0.2") as listener, connections_recorded() as attempts:
        with pytest.raises(OutboundRefused, match=r"the address 127\.0\.0\.2 is a loopback address"):
            _get(f"https://127.0.0.2:{listener.port}/")
        assert listener.connections() == 0
    assert attempts.connects == []


@pytest.mark.usefixtures("private_refused")
@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback here")
@pytest.mark.parametrize("host", ["[::1]", "[0:0:0:0:0:0:0:1]", "[::0:1]"])
def test_ipv6_loopback_is_refused_and_nothing_reaches_the_listener(host):
    with loopback_listener("::1") as listener, connections_recorded() as attempts:
        with pytest.raises(OutboundRefused) as refused:
            _get(f"https://{host}:{listener.port}/")
        assert listener.connections() == 0
    assert attempts.connects == []
    assert (
        refused.value.rule == "loopback" and "the address ::1 is a loopback address" in refused.value.detail
    )


# No test may send a packet to any of these: the audit hook proves no connection was attempted.
NEVER_CONTACTED = [
    ("10.0.0.1", "private"),
    ("10.255.255.254", "private"),
    ("167772161", "private"),  # 10.0.0.1 in decimal
    ("10.1", "private"),  # 10.0.0.1 in short form
    ("172.16.0.1", "private"),
    ("172.31.255.254", "private"),
    ("192.168.1.1", "private"),
    ("0xc0.0xa8.1.1", "private"),
    ("169.254.169.254", "link_local"),
    ("0xa9fea9fe", "link_local"),
    ("0251.0376.0251.0376", "link_local"),
    ("100.64.0.1", "shared"),
    ("100.127.255.254", "shared"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("0.0.0.0", "unspecified"),  # noqa: S104 - a target that must be refused, not a binding
    ("0", "unspecified"),
    ("0.0.0.1", "unspecified"),
    ("192.0.0.8", "special_purpose"),
    ("198.18.0.1", "private"),
    ("192.0.2.1", "private"),
    ("[::]", "unspecified"),
    ("[fc00::1]", "private"),
    ("[fd12:3456:789a::1]", "private"),
    ("[fec0::1]", "private"),
    ("[fe80::1]", "link_local"),
    ("[ff02::1]", "multicast"),
    ("[::ffff:10.0.0.1]", "private"),
    ("[::ffff:169.254.169.254]", "link_local"),
    ("[::ffff:0.0.0.0]", "unspecified"),
    ("[64:ff9b::a9fe:a9fe]", "link_local"),  # NAT64 of 169.254.169.254
    ("[64:ff9b::7f00:1]", "loopback"),  # NAT64 of 127.0.0.1
    ("[2002:a00:1::]", "private"),  # 6to4 of 10.0.0.1
    ("[2002:7f00:1::]", "loopback"),  # 6to4 of 127.0.0.1
    ("[::a00:1]", "reserved"),  # IPv4-compatible (deprecated)
    ("[64:ff9b:1::1]", "private"),  # local-use NAT64
    ("[2001:db8::1]", "reserved"),  # documentation
]


@pytest.mark.usefixtures("private_refused")
@pytest.mark.parametrize(("host", "rule"), NEVER_CONTACTED)
def test_every_other_address_class_is_refused_before_any_connection(host, rule, refusals):
    with connections_recorded() as attempts, pytest.raises(OutboundRefused) as refused:
        _get(f"https://{host}/latest/meta-data/")
    assert attempts.connects == []
    assert refused.value.rule == rule, refused.value.detail
    assert [r.rule for r in refusals] == [rule]
    with connections_recorded() as attempts, pytest.raises(OutboundRefused):
        outbound_url_check(url=f"https://{host}:8443/x", purpose="test")
    assert attempts.connects == []


@pytest.mark.usefixtures("private_refused")
def test_a_name_is_resolved_once_and_its_address_judged():
    with (
        connections_recorded() as attempts,
        pytest.raises(OutboundRefused, match=r"localhost resolves to a loopback address\.$"),
    ):
        _get("https://localhost/")
    assert attempts.lookups == ["localhost"] and attempts.connects == []


@pytest.mark.usefixtures("private_refused")
@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("http://example.com/", "scheme"),
        ("ftp://example.com/", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://example.com/", "scheme"),
        ("example.com/x", "scheme"),
        ("https://user:pw@example.com/", "credentials"),
        ("https://example.com@127.0.0.1/", "credentials"),
        ("https://exa mple.com/", "url"),
        ("https://example.com/\r\nX-Injected: 1", "url"),
        ("", "url"),
        ("https://" + "a" * 3000, "url"),
        ("https:///path", "host"),
    ],
)
def test_the_url_itself_must_be_plain_https(url, rule):
    with connections_recorded() as attempts, pytest.raises(OutboundRefused) as refused:
        _get(url)
    assert refused.value.rule == rule
    assert attempts.connects == [] and attempts.lookups == []


def test_http_and_private_addresses_are_allowed_when_configured(settings):
    settings.OUTBOUND_ALLOW_PRIVATE = True
    with HttpTestServer(routes={"/doc": _ok}) as server, connections_recorded() as attempts:
        response = _get(f"http://localhost:{server.port}/doc?x=1")
    assert response.status == 200 and response.json() == {"ok": True}
    # Resolved once and connected to that address; the Host header keeps the name.
    assert attempts.lookups.count("localhost") == 1
    assert [c for c in attempts.connects if c[1] == server.port] == [("127.0.0.1", server.port)]
    [(method, path, headers)] = server.requests
    assert (method, path) == ("GET", "/doc?x=1")
    assert headers["Host"] == f"localhost:{server.port}" and headers["Accept-Encoding"] == "identity"


def test_a_saved_url_is_not_resolved_while_private_addresses_are_allowed(settings):
    settings.OUTBOUND_ALLOW_PRIVATE = True
    with connections_recorded() as attempts:
        target = outbound_url_check(url="http://idp.example.test:8080/realms/x", purpose="test")
    assert attempts.lookups == [] and target.addresses == ()
    assert target.host_header == "idp.example.test:8080"


# --- pinning, TLS and the allow-list -----------------------------------------------------------


@pytest.mark.usefixtures("private_refused")
def test_allow_listed_network_is_reached_pinned_with_the_certificate_checked_on_the_name(
    settings, localhost_cert
):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32", "::1/128"]
    settings.OUTBOUND_CA_BUNDLE = str(localhost_cert[0])
    with (
        HttpTestServer(tls=localhost_cert, routes={"/doc": _ok}) as server,
        connections_recorded() as attempts,
    ):
        response = _get(f"https://localhost:{server.port}/doc")
    assert response.json() == {"ok": True} and response.url == f"https://localhost:{server.port}/doc"
    assert attempts.lookups.count("localhost") == 1  # one lookup: the connection used its answer
    assert attempts.connects[-1] == ("127.0.0.1", server.port)
    assert server.requests[0][2]["Host"] == f"localhost:{server.port}"


@pytest.mark.usefixtures("private_refused")
def test_the_certificate_must_match_the_host_name(settings, tmp_path):
    other = write_self_signed_cert(tmp_path, dns_names=["idp.example.test"], ips=["127.0.0.1"])
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32", "::1/128"]
    settings.OUTBOUND_CA_BUNDLE = str(other[0])
    with HttpTestServer(tls=other, routes={"/doc": _ok}) as server:
        with pytest.raises(OutboundError) as failed:
            _get(f"https://localhost:{server.port}/doc")
        assert server.requests == []
    assert failed.value.code == "outbound_tls_failed"
    assert (
        failed.value.detail == "The request to localhost failed: its TLS certificate could not be verified."
    )


@pytest.mark.usefixtures("private_refused")
def test_an_untrusted_certificate_is_refused_with_the_default_bundle(settings, localhost_cert):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32", "::1/128"]
    with (
        HttpTestServer(tls=localhost_cert, routes={"/doc": _ok}) as server,
        pytest.raises(OutboundError) as failed,
    ):
        _get(f"https://localhost:{server.port}/doc")
    assert failed.value.code == "outbound_tls_failed"


def test_a_bad_allow_list_entry_is_a_configuration_error(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.OUTBOUND_ALLOW_PRIVATE = False
    settings.OUTBOUND_ALLOWED_NETWORKS = ["10.0.0.0/33"]
    with pytest.raises(ImproperlyConfigured, match="OUTBOUND_ALLOWED_NETWORKS"):
        _get("https://127.0.0.1/")


# --- redirects ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("private_refused")
def test_a_redirect_from_an_allowed_server_to_a_loopback_address_is_refused(
    settings, localhost_cert, refusals
):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32", "::1/128"]
    settings.OUTBOUND_CA_BUNDLE = str(localhost_cert[0])
    with loopback_listener("127.0.0.2") as listener:
        routes = {
            "/start": redirect_to(f"https://127.0.0.2:{listener.port}/admin"),
            "/downgrade": redirect_to(f"http://localhost:{listener.port}/"),
        }
        with HttpTestServer(tls=localhost_cert, routes=routes) as server, connections_recorded() as attempts:
            with pytest.raises(OutboundRefused, match=r"the address 127\.0\.0\.2 is a loopback address"):
                _get(f"https://localhost:{server.port}/start")
            with pytest.raises(OutboundRefused) as downgraded:
                _get(f"https://localhost:{server.port}/downgrade")
        assert listener.connections() == 0
    assert {port for _, port, *_ in attempts.connects} == {server.port}
    assert [path for _, path, _ in server.requests] == ["/start", "/downgrade"]
    assert downgraded.value.rule == "scheme"
    assert [r.rule for r in refusals] == ["loopback", "scheme"]


def test_redirects_are_followed_within_the_limit_and_credentials_stay_with_their_origin(settings):
    settings.OUTBOUND_ALLOW_PRIVATE = True
    with HttpTestServer(routes={"/doc": _ok}) as other:
        routes = {
            "/a": redirect_to("/b", 301),
            "/b": redirect_to(f"http://127.0.0.1:{other.port}/doc", 307),
            "/loop": redirect_to("/loop"),
            "/post": redirect_to("/b", 307),
        }
        with HttpTestServer(routes=routes) as server:
            response = _get(f"http://localhost:{server.port}/a", basic_auth=("client", "secret"))
            assert response.json() == {"ok": True} and response.url == f"http://127.0.0.1:{other.port}/doc"
            assert [p for _, p, _ in server.requests] == ["/a", "/b"]
            assert all("Authorization" in h for _, _, h in server.requests)
            assert "Authorization" not in other.requests[0][2]

            with pytest.raises(OutboundError) as looped:
                _get(f"http://localhost:{server.port}/loop", max_redirects=3)
            assert looped.value.code == "outbound_too_many_redirects"
            assert [p for _, p, _ in server.requests].count("/loop") == 4

            posted = outbound_request(
                method="POST", url=f"http://localhost:{server.port}/post", purpose="test", form={"a": "1"}
            )
            assert posted.status == 307  # a POST is never re-sent elsewhere
            assert [p for _, p, _ in server.requests][-1] == "/post"


# --- size and time -----------------------------------------------------------------------------


def test_an_oversized_body_is_cut_while_streaming(settings):
    settings.OUTBOUND_ALLOW_PRIVATE = True
    routes = {
        "/declared": endless_body(total=2 * MIB, declare_length=True),
        "/endless": endless_body(total=64 * MIB, declare_length=False),
        "/chunked": endless_body(total=64 * MIB, declare_length=False, chunked=True),
        "/exact": endless_body(total=MIB, declare_length=False, chunked=True),
    }
    with HttpTestServer(routes=routes) as server:
        for path in ("/declared", "/endless", "/chunked"):
            with pytest.raises(OutboundTooLarge) as too_large:
                _get(f"http://127.0.0.1:{server.port}{path}", max_bytes=MIB)
            assert (
                too_large.value.detail == "The request to 127.0.0.1 failed: the answer is larger than 1 MiB."
            )
            assert too_large.value.status == 502 and too_large.value.code == "outbound_response_too_large"
        # The 64 MiB answers were cut: the server could not write them.
        assert server.wait_aborted(2)
        assert len(_get(f"http://127.0.0.1:{server.port}/exact", max_bytes=MIB).body) == MIB


@pytest.mark.parametrize("tls", [False, True])
def test_a_slow_server_is_timed_out(settings, localhost_cert, tls):
    settings.OUTBOUND_ALLOW_PRIVATE = True
    settings.OUTBOUND_TIMEOUT = 0.5
    settings.OUTBOUND_CA_BUNDLE = str(localhost_cert[0])
    with HttpTestServer(routes={"/slow": slow_headers(3)}, tls=localhost_cert if tls else None) as server:
        started = time.monotonic()
        with pytest.raises(OutboundTimeout) as timed_out:
            _get(f"{'https' if tls else 'http'}://localhost:{server.port}/slow")
        assert time.monotonic() - started < 2.5  # the server answers only after 3 s
    assert timed_out.value.status == 504 and timed_out.value.code == "outbound_timeout"
    assert timed_out.value.detail == "The request to localhost failed: the server took too long to answer."


def test_the_timeout_bounds_the_whole_exchange_not_each_read(settings):
    """A server that sends one byte at a time, each well within a read timeout, is still cut at
    the deadline."""
    settings.OUTBOUND_ALLOW_PRIVATE = True
    with HttpTestServer(routes={"/trickle": trickling_body(interval=0.2, pieces=50)}) as server:
        started = time.monotonic()
        with pytest.raises(OutboundTimeout):
            _get(f"http://127.0.0.1:{server.port}/trickle", timeout=1)
        assert time.monotonic() - started < 4  # the whole body would take 10 s


def test_a_failed_connection_answers_our_words_not_the_exception(settings):
    settings.OUTBOUND_ALLOW_PRIVATE = True
    with loopback_listener() as listener:
        port = listener.port
    with pytest.raises(OutboundError) as failed:
        _get(f"http://127.0.0.1:{port}/")
    assert failed.value.code == "outbound_unreachable" and failed.value.status == 502
    assert failed.value.detail == "The request to 127.0.0.1 failed: the server could not be reached."


def test_json_that_nests_too_deep_is_a_value_error():
    response = OutboundResponse(200, {}, b"[" * 100_000, "https://example.com/")
    with pytest.raises(ValueError, match="nested"):
        response.json()


# --- streamed answers (outbound_stream) -----------------------------------------------------------


def _events(handler: Any) -> None:
    """Three lines, a pause between them: a streamed answer (server-sent events)."""
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.send_header("Connection", "close")
    handler.end_headers()
    for number in range(3):
        handler.wfile.write(b"data: %d\r\n" % number)
        handler.wfile.flush()
        time.sleep(0.2)
    handler.close_connection = True


@pytest.mark.usefixtures("private_refused")
def test_a_stream_is_refused_before_any_connection(refusals):
    with loopback_listener() as listener, connections_recorded() as attempts:
        url = f"https://127.0.0.1:{listener.port}/"
        with (
            pytest.raises(OutboundRefused) as refused,
            outbound_stream(method="POST", url=url, purpose="test"),
        ):
            pass  # pragma: no cover
        assert listener.connections() == 0
    assert refused.value.rule == "loopback" and [r.rule for r in refusals] == ["loopback"]
    assert attempts.connects == []


def test_a_stream_is_read_as_it_arrives(settings):
    settings.OUTBOUND_ALLOW_PRIVATE = True
    with HttpTestServer(routes={"/events": _events}) as server:
        started = time.monotonic()
        with outbound_stream(
            method="POST", url=f"http://127.0.0.1:{server.port}/events", purpose="test", body=b"{}"
        ) as answer:
            assert answer.status == 200
            first = next(answer.lines())
            first_after = time.monotonic() - started
            rest = list(answer.lines())
    assert first == b"data: 0" and rest == [b"data: 1", b"data: 2"]
    assert first_after < 0.3  # before the server finished writing (0.6 s)
    assert server.requests[0][0] == "POST"


def test_a_silent_stream_times_out_and_a_long_one_is_cut(settings):
    settings.OUTBOUND_ALLOW_PRIVATE = True
    routes = {
        "/slow": trickling_body(interval=1.0, pieces=3),
        "/big": endless_body(total=4 * MIB, declare_length=False),
    }
    with HttpTestServer(routes=routes) as server:
        base = f"http://127.0.0.1:{server.port}"
        with (
            pytest.raises(OutboundTimeout),
            outbound_stream(method="GET", url=base + "/slow", purpose="test", idle_timeout=0.3) as answer,
        ):
            answer.read()
        with (
            pytest.raises(OutboundTooLarge),
            outbound_stream(method="GET", url=base + "/big", purpose="test", max_bytes=MIB) as answer,
        ):
            answer.read()
