"""Request types of the health RPC: strict, partial updates, names of bad fields."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from msgspec import UNSET

from libs.common.codec import decode
from libs.common.errors import BadRequest, InvalidInput
from services.health.fleet import like_pattern, parse_time
from services.health.schemas import AlertQuery, DeviceListQuery, DeviceUpdate, GroupCreate


def test_update_tells_absent_from_null() -> None:
    change = decode(b'{"device_id": "ACV-1", "name": null}', DeviceUpdate)
    assert change.name is None
    assert change.description is UNSET and change.tags is UNSET and change.group_id is UNSET


@pytest.mark.parametrize(("body", "field"), [
    (b'{"device_id": "ACV-1", "tags": "a"}', "tags"),
    (b'{"device_id": "ACV-1", "tags": [""]}', "tags"),
    (b'{"device_id": "ACV-1", "tags": null}', "tags"),
    (b'{"device_id": "ACV-1", "name": 3}', "name"),
    (b'{"device_id": "ACV-1", "group_id": "x"}', "group_id"),
    (b'{"device_id": "ACV-1", "owner": "x"}', "owner"),
    (b'{"device_id": "a.b"}', "device_id"),
])
def test_bad_update_names_the_field(body: bytes, field: str) -> None:
    with pytest.raises(InvalidInput, match=field):
        decode(body, DeviceUpdate)


def test_list_query_checks_status_and_paging() -> None:
    with pytest.raises(InvalidInput, match="status"):
        decode(b'{"status": "asleep"}', DeviceListQuery)
    with pytest.raises(BadRequest, match="limit"):
        decode(b'{"limit": 5000}', DeviceListQuery)
    assert decode(b"{}", DeviceListQuery).limit == 50


def test_alert_query_reads_from_and_to() -> None:
    query = decode(b'{"from": "1700000000", "to": "2026-01-01T00:00:00Z"}', AlertQuery)
    assert query.since == "1700000000" and query.until == "2026-01-01T00:00:00Z"


def test_group_name_is_required() -> None:
    with pytest.raises(InvalidInput, match="name"):
        decode(b'{"description": "x"}', GroupCreate)


def test_parse_time_accepts_epoch_and_iso_and_names_the_field() -> None:
    assert parse_time("from", "0") == datetime(1970, 1, 1, tzinfo=UTC)
    assert parse_time("to", "2026-01-01T00:00:00Z") == datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_time("to", "2026-01-01T00:00:00").tzinfo is not None
    with pytest.raises(BadRequest, match="from"):
        parse_time("from", "yesterday")


def test_like_pattern_takes_wildcards_literally() -> None:
    assert like_pattern("a_b%") == "%a\\_b\\%%"
