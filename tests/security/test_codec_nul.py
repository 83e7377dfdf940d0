"""U+0000 never reaches PostgreSQL (text and jsonb cannot hold it): the codec refuses it as bad
input, wherever it hides, and only it."""

from __future__ import annotations

from typing import Any

import pytest

from libs.common.codec import decode, encode
from libs.common.errors import InvalidInput


@pytest.mark.parametrize("payload", [
    b'{"version": "1.0.0\\u0000.bin"}',
    b'{"a": {"b": ["x", "\\u0000"]}}',
    b'{"k\\u0000": 1}',
    b'{"a": "\\\\\\u0000"}',  # an escaped backslash, then a NUL
    encode({"a": "x\x00y"}),
])
def test_a_nul_anywhere_is_invalid_input(payload: bytes) -> None:
    with pytest.raises(InvalidInput, match="NUL"):
        decode(payload, dict[str, Any])


@pytest.mark.parametrize("payload", [
    b'{"a": "\\\\u0000"}',  # a backslash followed by the text u0000: no NUL
    b'{"a": "\\u0001"}',
    encode({"data": b"\x00\x00binary"}),  # bytes travel as base64
])
def test_lookalikes_pass(payload: bytes) -> None:
    decode(payload, dict[str, Any])
