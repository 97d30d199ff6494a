"""``spad --listen``: HOST:PORT, an IPv6 host in brackets; anything else is a usage error."""

from __future__ import annotations

import argparse

import pytest

from spad.server.main import parse_listen


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.0.0.1:7070", ("127.0.0.1", 7070)),
        (":0", ("127.0.0.1", 0)),
        ("[::1]:0", ("::1", 0)),
        ("localhost:65535", ("localhost", 65535)),
    ],
)
def test_good_addresses(text: str, address: tuple[str, int]) -> None:
    assert parse_listen(text) == address


@pytest.mark.parametrize(
    "text", ["nonsense", "[::1:0", "::1]:0", "::1:0", "[[::1]]:0", "h:65536", "h:²", "h:-1"]
)
def test_bad_addresses_are_refused(text: str) -> None:
    """Unbalanced brackets were served on [::1] (they were stripped, not checked)."""
    with pytest.raises(argparse.ArgumentTypeError, match="HOST:PORT"):
        parse_listen(text)
