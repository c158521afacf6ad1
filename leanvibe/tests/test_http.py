"""``leanvibe.http.client_address``: the address the outermost trusted proxy saw."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from leanvibe.http import client_address, is_local


def _request(remote="127.0.0.1", forwarded=None):
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, None, "127.0.0.1"),
        (0, "203.0.113.7", "127.0.0.1"),  # no proxy: the header is the client's own words
        (1, None, "127.0.0.1"),  # straight to the app, past the proxy
        (1, "203.0.113.7", "203.0.113.7"),
        (1, "10.1.1.1, 203.0.113.7", "203.0.113.7"),  # the left entry was written by the client
        (1, "10.1.1.1,203.0.113.7 ", "203.0.113.7"),
        (2, "10.1.1.1, 203.0.113.7, 10.0.0.5", "203.0.113.7"),
        (2, "203.0.113.7", "203.0.113.7"),  # fewer entries than proxies: the leftmost
        (1, "203.0.113.7:54321", "203.0.113.7"),
        (1, "[2001:db8::7]:443", "2001:db8::7"),
        (1, "2001:DB8:0:0::7", "2001:db8::7"),
        (1, "unknown", ""),  # never the proxy's own address instead
        (1, "203.0.113.7\x00", ""),
        (1, "", "127.0.0.1"),
    ],
)
def test_client_address(settings, proxies, forwarded, expected):
    settings.NUM_PROXIES = proxies
    assert client_address(_request(forwarded=forwarded)) == expected


def test_a_missing_or_odd_remote_address_is_empty(settings):
    settings.NUM_PROXIES = 0
    assert client_address(_request(remote="")) == ""
    assert client_address(_request(remote="not-an-address")) == ""


def test_local(settings):
    settings.NUM_PROXIES = 1
    assert is_local(_request())
    assert is_local(_request(remote="::1"))
    assert not is_local(_request(forwarded="203.0.113.7"))
    assert not is_local(_request(remote="203.0.113.7"))
    assert not is_local(_request(forwarded="garbage"))
