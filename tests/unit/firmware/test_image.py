"""ESP32 image validation against images built here and read by esptool independently."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from libs.common.errors import InvalidInput
from services.firmware.image import validate_image, xor_of
from tests.support.esp_image import bad_images, build_image

EXPECTED_REASON = {
    "wrong magic": "wrong magic byte",
    "truncated": "goes beyond the end",
    "segment beyond file": "goes beyond the end",
    "too many segments": "segment count 17",
    "missing app description": "no application description",
    "bad appended digest": "digest does not match",
    "bad checksum byte": "checksum byte",
    "png": "PNG",
    "empty": "empty",
    "random bytes": "wrong magic byte",
}


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "image.bin"
    path.write_bytes(data)
    return path


def test_a_built_image_is_read_by_esptool_and_by_the_validator(tmp_path: Path) -> None:
    path = write(tmp_path, build_image("1.3.0-rc.1", project="meter-gw", idf_version="v5.2"))
    out = subprocess.run([sys.executable, "-m", "esptool", "--chip", "esp32", "image_info",
                          str(path)], capture_output=True, text=True, check=True).stdout
    assert "Checksum: " in out and "(valid)" in out
    assert "Validation hash" in out and "App version: 1.3.0-rc.1" in out
    info = validate_image(path)
    assert (info.version, info.project_name, info.idf_version) == ("1.3.0-rc.1", "meter-gw",
                                                                  "v5.2")
    assert info.hash_appended and info.segment_count == 2
    assert info.image_bytes == path.stat().st_size
    assert info.build_time == "Dec  4 2025 10:00:00"


def test_an_image_without_digest_is_valid(tmp_path: Path) -> None:
    info = validate_image(write(tmp_path, build_image(hash_appended=False, two_segments=False)))
    assert not info.hash_appended and info.segment_count == 1


@pytest.mark.parametrize("kind", sorted(EXPECTED_REASON))
def test_bad_images_are_refused_saying_why(tmp_path: Path, kind: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_image(write(tmp_path, bad_images()[kind]))
    assert EXPECTED_REASON[kind] in caught.value.detail


def test_xor_of_matches_a_byte_loop() -> None:
    for data in (b"", b"\x01", b"\x01\x02\x03", bytes(range(256)) * 37 + b"\x55"):
        expected = 0
        for byte in data:
            expected ^= byte
        assert xor_of(data) == expected
