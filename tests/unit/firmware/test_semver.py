"""Semantic version precedence, also through the text sort key PostgreSQL orders by."""

from __future__ import annotations

import pytest

from libs.common.errors import InvalidInput
from services.firmware.semver import is_newer, parse_version

ORDERED = ["0.9.9", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
           "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.3.0-rc.1", "1.3.0",
           "1.9.0", "1.10.0", "2.0.0"]


def test_precedence_follows_semver() -> None:
    shuffled = sorted(ORDERED, key=lambda v: v[::-1])
    assert sorted(shuffled, key=lambda v: parse_version(v).sort_key) == ORDERED


def test_newer_than_current() -> None:
    assert is_newer("1.10.0", "1.9.0")
    assert is_newer("1.3.0", "1.3.0-rc.1")
    assert not is_newer("1.3.0-rc.1", "1.3.0")
    assert not is_newer("1.2.0", "1.2.0")
    assert is_newer("1.2.0", "garbage")
    assert is_newer("1.2.0", None)
    assert not is_newer("1.2.0", "v1.2.0")


@pytest.mark.parametrize("text", ["1.2", "01.2.0", "1.2.0-", "v1.2.0", "1.2.0 ", "", "a.b.c"])
def test_non_semantic_versions_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_version(text)


def test_build_metadata_is_ignored_in_order() -> None:
    assert parse_version("1.2.0+build.5").sort_key == parse_version("1.2.0").sort_key
