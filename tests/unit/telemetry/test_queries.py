"""Pure rules of telemetry queries: times, ranges, counters, CSV cells, partitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from libs.common.errors import BadRequest, InvalidInput
from services.telemetry import queries
from services.telemetry.partitions import expired, months_ahead, parse_partition, partition_name
from services.telemetry.repo import StatRow
from services.telemetry.rows import Batch, RawBundle, RawMessage, RawReading, decode_bundle

NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("raw", [1749988800, 1749988800.0, "1749988800",
                                 "2025-06-15T12:00:00Z", "2025-06-15T12:00:00+00:00",
                                 "2025-06-15T12:00:00"])
def test_times_are_iso_or_epoch(raw: object) -> None:
    assert queries.parse_time(raw, "from") == NOW  # type: ignore[arg-type]


def test_ranges() -> None:
    start, end = queries.time_range(None, None, NOW, default=timedelta(days=1),
                                    longest=timedelta(days=10))
    assert (start, end) == (NOW - timedelta(days=1), NOW)
    with pytest.raises(BadRequest, match="reversed"):
        queries.time_range(2000, 1000, NOW, default=None, longest=timedelta(days=1))
    with pytest.raises(BadRequest, match="required"):
        queries.time_range(1000, None, NOW, default=None, longest=timedelta(days=1))
    with pytest.raises(BadRequest, match="longer"):
        queries.time_range(0, 86400 * 3, NOW, default=None, longest=timedelta(days=1))
    with pytest.raises(BadRequest):
        queries.parse_time("soon", "to")
    with pytest.raises(BadRequest, match="interval"):
        queries.bucket_width("2m")


def test_counters_and_buckets() -> None:
    assert queries.is_counter("ep_imp") and queries.is_counter("kWh_total")
    assert not queries.is_counter("v1") and not queries.is_counter("p")
    hour = datetime(2025, 1, 1, tzinfo=UTC)
    stats = [StatRow(bucket=hour, field="ep_imp", n=2, min=10.0, avg=11.0, max=12.0),
             StatRow(bucket=hour, field="v1", n=2, min=1.0, avg=1.5, max=2.0)]
    [bucket] = queries.buckets({hour: 2}, stats)
    assert bucket.count == 2
    assert bucket.fields["ep_imp"].increase == 2.0 and bucket.fields["v1"].increase is None


def test_csv_cells_neutralise_formulas_but_not_numbers() -> None:
    cell = queries.csv_cell
    assert [cell(v) for v in ("=1+2", "+x", "-x", "@sum", "\tx", "\rx")] == [
        "'=1+2", "'+x", "'-x", "'@sum", "'\tx", "'\rx"]
    assert [cell(v) for v in ("-12.5", "+3", "1e5", -3.5, 7, None, True)] == [
        "-12.5", "+3", "1e5", "-3.5", "7", "", "true"]
    assert queries.csv_rows([["a,b", 'say "hi"']]) == '"a,b","say ""hi"""\r\n'


def test_partitions_by_month() -> None:
    assert months_ahead(datetime(2025, 11, 3, tzinfo=UTC)) == [(2025, 11), (2025, 12), (2026, 1)]
    assert parse_partition(partition_name((2024, 2))) == (2024, 2)
    assert parse_partition("telemetry_records_default") is None
    months = [(2025, 4), (2025, 5), (2025, 6)]
    assert expired(months, NOW, retention_days=30) == [(2025, 4)]  # May ended < 30 days ago
    assert expired(months, NOW, retention_days=365) == []


def test_bad_records_are_dropped_and_counted() -> None:
    good = msgspec.Raw(b'{"v1":1.0}')
    message = RawMessage("ACV-1", NOW.timestamp(), "sd", "gsm", [
        RawReading(NOW.timestamp(), False, good),
        RawReading(NOW.timestamp() + 1, False, msgspec.Raw(b'{"s":"a\\u0000"}')),
        RawReading(float("nan"), False, good),
        RawReading(1000.0, False, good),
    ], dropped=2)
    batch = Batch()
    stranger = RawMessage("bad id!", 0.0, "sd", None, [RawReading(1.0, False, good)])
    batch.add(RawBundle([message, stranger]), cutoff_ts=NOW.timestamp() - 86400)
    assert len(batch.rows) == 1
    assert batch.dropped == {"malformed": 2, "bad_data": 1, "bad_ts": 2, "bad_device_id": 1}
    assert batch.messages == 2
    with pytest.raises(InvalidInput):
        decode_bundle(b'{"messages": 3}')
