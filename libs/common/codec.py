"""The one JSON codec of the console (msgspec): typed decode, fast encode."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

from libs.common.errors import InvalidInput

T = TypeVar("T")

_encoder = msgspec.json.Encoder()
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}
# The JSON escape of U+0000 (an escaped backslash before it does not count). PostgreSQL text and
# jsonb cannot hold it: refused here as bad input, instead of failing a query with a 500.
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def encode(value: Any) -> bytes:
    return _encoder.encode(value)


def decode(data: bytes | str, into: type[T]) -> T:
    """Decode JSON into a type; a malformed or mistyped payload is an InvalidInput."""
    decoder = _decoders.get(into)
    if decoder is None:
        decoder = _decoders[into] = msgspec.json.Decoder(into)
    raw = data.encode() if isinstance(data, str) else data
    if b"\\u0000" in raw and _NUL_ESCAPE.search(raw):
        raise InvalidInput("text may not contain the NUL character (U+0000)")
    try:
        return decoder.decode(data)  # type: ignore[no-any-return]
    except msgspec.ValidationError as exc:
        raise InvalidInput(str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"malformed JSON: {exc}") from exc


def to_builtins(value: Any) -> Any:
    return msgspec.to_builtins(value)
