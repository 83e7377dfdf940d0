"""Rollout stages, failure thresholds, byte ranges and upload chunk order."""

from __future__ import annotations

from pathlib import Path

import pytest

from libs.common.errors import BadRequest, InvalidInput, TooLarge
from services.firmware import staging
from services.firmware.schemas import CHUNK_BYTES, MAX_IMAGE_BYTES
from services.firmware.uploads import Uploads
from services.gateway.api.firmware import _Unsatisfiable, requested_range

ETAG = '"abc"'


def test_percent_stages_cover_the_fleet() -> None:
    targets = staging.plan_stages([5, 25], "percent", 40)
    assert targets == [5, 25, 100.0]
    sizes = staging.stage_sizes(targets, "percent", 40)
    assert sizes == [2, 8, 30]
    assert staging.assign_stages(["d"] * 40, sizes)[:3] == [0, 0, 1]


def test_small_fleets_get_at_least_one_device_first() -> None:
    assert staging.stage_sizes([5, 25, 100], "percent", 4) == [1, 0, 3]
    assert staging.stage_sizes(staging.plan_stages([1, 3], "count", 10), "count", 10) == [1, 2, 7]


@pytest.mark.parametrize("stages", [[0], [50, 10], [150], [float("nan")]])
def test_bad_stages_are_refused(stages: list[float]) -> None:
    with pytest.raises(InvalidInput):
        staging.plan_stages(stages, "percent", 10)


def test_threshold_is_a_fraction_or_a_count() -> None:
    assert staging.allowed_failures(0.2, 10) == 2.0
    assert staging.allowed_failures(3, 10) == 3
    with pytest.raises(InvalidInput):
        staging.check_deploy_limits(0, 1, 0.1, 60)


@pytest.mark.parametrize(("header", "expected"), [
    ("bytes=0-9", (0, 9)), ("bytes=10-", (10, 99)), ("bytes=-10", (90, 99)),
    ("bytes=90-500", (90, 99)), ("bytes=-500", (0, 99)), ("bytes=0-1,5-6", None),
    ("items=0-1", None), ("bytes=-", None),
])
def test_ranges(header: str, expected: tuple[int, int] | None) -> None:
    assert requested_range({"range": header}, ETAG, 100) == expected


def test_unsatisfiable_ranges_and_if_range() -> None:
    for header in ("bytes=100-", "bytes=-0", "bytes=9-3"):
        with pytest.raises(_Unsatisfiable):
            requested_range({"range": header}, ETAG, 100)
    assert requested_range({"range": "bytes=5-", "if-range": ETAG}, ETAG, 100) == (5, 99)
    assert requested_range({"range": "bytes=5-", "if-range": '"old"'}, ETAG, 100) is None


def test_upload_chunks_in_order_repeats_ignored_and_size_capped(tmp_path: Path) -> None:
    uploads = Uploads(tmp_path)
    upload = uploads.begin("admin")
    assert uploads.add_chunk(upload.upload_id, 0, b"ab") == 2
    assert uploads.add_chunk(upload.upload_id, 0, b"ab") == 2  # a retried request
    with pytest.raises(BadRequest):
        uploads.add_chunk(upload.upload_id, 2, b"cd")
    chunk = b"\0" * CHUNK_BYTES
    with pytest.raises(TooLarge):
        for seq in range(1, MAX_IMAGE_BYTES // CHUNK_BYTES + 2):
            uploads.add_chunk(upload.upload_id, seq, chunk)
    assert not upload.path.exists()
    assert uploads.expire(now=10**9) == 0
