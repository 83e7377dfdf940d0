"""ESP32 application image validation (the layout esptool and the ESP-IDF bootloader read).

    header (24 B): 0xE9, segment count, SPI mode, SPI speed/size, entry address (u32),
                   extended header (16 B) whose last byte says whether a SHA-256 is appended
    segments:      each an 8-byte header (load address u32, data length u32) and its data;
                   the first one starts with the application description (esp_app_desc_t)
    checksum:      one byte, 0xEF XOR every byte of segment data, at the end of a 16-byte block
    digest:        optional SHA-256 of everything before it

The file is read from disk in blocks (images are up to 16 MiB and never held whole in memory).
Every refusal is an InvalidInput that says what is wrong.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from libs.common.errors import InvalidInput

IMAGE_MAGIC = 0xE9
APP_DESC_MAGIC = 0xABCD5432
CHECKSUM_SEED = 0xEF
HEADER_BYTES = 24
SEGMENT_HEADER_BYTES = 8
MAX_SEGMENTS = 16
DIGEST_BYTES = 32
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# magic, secure_version, reserved[2], version, project_name, time, date, idf_ver, app_elf_sha256
APP_DESC = struct.Struct("<II8s32s32s16s16s32s32s")
READ_BLOCK_BYTES = 256 * 1024


@dataclass(frozen=True)
class ImageInfo:
    version: str
    project_name: str
    build_time: str
    idf_version: str
    app_elf_sha256: str
    segment_count: int
    entry_address: int
    hash_appended: bool
    image_bytes: int  # up to the checksum or appended digest (a signature block may follow)


def refuse(reason: str) -> InvalidInput:
    return InvalidInput(f"not a valid ESP32 application image: {reason}")


def xor_of(data: bytes) -> int:
    """XOR of all bytes, folded as one big integer (fast for megabytes, no per-byte loop)."""
    if not data:
        return 0
    value = int.from_bytes(data, "little")
    width_bytes = 1 << (len(data) - 1).bit_length()
    while width_bytes > 1:
        width_bytes //= 2
        bits = width_bytes * 8
        value = (value >> bits) ^ (value & ((1 << bits) - 1))
    return value


def _text(raw: bytes, field: str) -> str:
    try:
        text = raw.split(b"\0", 1)[0].decode("utf-8")
    except UnicodeDecodeError:
        raise refuse(f"the application description's {field} is not text") from None
    if not text.isprintable():
        raise refuse(f"the application description's {field} is not printable")
    return text


def _read_header(f: BinaryIO, size_bytes: int) -> tuple[int, int, bool]:
    if size_bytes == 0:
        raise refuse("the file is empty")
    head = f.read(HEADER_BYTES)
    if head.startswith(PNG_SIGNATURE):
        raise refuse("this is a PNG picture")
    if head[0] != IMAGE_MAGIC:
        raise refuse(f"wrong magic byte 0x{head[0]:02X} (expected 0xE9)")
    if len(head) < HEADER_BYTES:
        raise refuse(f"truncated: {size_bytes} bytes is shorter than the 24-byte header")
    segment_count = head[1]
    if not 1 <= segment_count <= MAX_SEGMENTS:
        raise refuse(f"segment count {segment_count} is not between 1 and {MAX_SEGMENTS}")
    (entry_address,) = struct.unpack_from("<I", head, 4)
    hash_flag = head[23]
    if hash_flag not in (0, 1):
        raise refuse(f"hash-appended flag is {hash_flag} (expected 0 or 1)")
    return segment_count, entry_address, hash_flag == 1


def _read_app_desc(first: bytes) -> tuple[str, str, str, str, str]:
    if len(first) < APP_DESC.size:
        raise refuse("the first segment is too short to hold the application description")
    magic, _, _, version, project, time_, date, idf, elf_sha = APP_DESC.unpack_from(first)
    if magic != APP_DESC_MAGIC:
        raise refuse(f"no application description (magic 0x{magic:08X}, expected 0xABCD5432)")
    build_time = f"{_text(date, 'date')} {_text(time_, 'time')}".strip()
    return (_text(version, "version"), _text(project, "project name"), build_time,
            _text(idf, "IDF version"), elf_sha.hex())


def _segments(f: BinaryIO, size_bytes: int, count: int) -> tuple[int, bytes]:
    """Walk the segments: answer the XOR of their data and the first segment's opening."""
    checksum = CHECKSUM_SEED
    first_opening = b""
    offset = HEADER_BYTES
    for index in range(count):
        seg_head = f.read(SEGMENT_HEADER_BYTES)
        if len(seg_head) < SEGMENT_HEADER_BYTES:
            raise refuse(f"truncated: segment {index} header at byte {offset} is past the end")
        _, length = struct.unpack("<II", seg_head)
        offset += SEGMENT_HEADER_BYTES
        if offset + length > size_bytes:
            raise refuse(f"segment {index} of {length} bytes at byte {offset} goes beyond "
                         f"the end of the file ({size_bytes} bytes)")
        remaining = length
        while remaining:
            block = f.read(min(READ_BLOCK_BYTES, remaining))
            if index == 0 and not first_opening:
                first_opening = block[:APP_DESC.size]
            checksum ^= xor_of(block)
            remaining -= len(block)
        offset += length
    return checksum, first_opening


def validate_image(path: Path) -> ImageInfo:
    """Check the image at `path`; answer what it says about itself, or raise InvalidInput."""
    size_bytes = path.stat().st_size
    with path.open("rb") as f:
        count, entry, hash_appended = _read_header(f, size_bytes)
        checksum, first_opening = _segments(f, size_bytes, count)
        version, project, build_time, idf, elf_sha = _read_app_desc(first_opening)
        # The checksum byte ends a 16-byte block.
        checksum_at = f.tell() + (15 - f.tell() % 16)
        if checksum_at >= size_bytes:
            raise refuse("truncated: the checksum byte is past the end of the file")
        f.seek(checksum_at)
        stored = f.read(1)[0]
        if stored != checksum:
            raise refuse(f"checksum byte 0x{stored:02X} does not match the segments "
                         f"(computed 0x{checksum:02X})")
        image_bytes = checksum_at + 1
        if hash_appended:
            image_bytes = _check_digest(f, image_bytes, size_bytes)
    return ImageInfo(version=version, project_name=project, build_time=build_time,
                     idf_version=idf, app_elf_sha256=elf_sha, segment_count=count,
                     entry_address=entry, hash_appended=hash_appended, image_bytes=image_bytes)


def _check_digest(f: BinaryIO, digest_at: int, size_bytes: int) -> int:
    if digest_at + DIGEST_BYTES > size_bytes:
        raise refuse("truncated: the appended SHA-256 digest is incomplete")
    f.seek(0)
    hasher = hashlib.sha256()
    remaining = digest_at
    while remaining:
        block = f.read(min(READ_BLOCK_BYTES, remaining))
        hasher.update(block)
        remaining -= len(block)
    if f.read(DIGEST_BYTES) != hasher.digest():
        raise refuse("the appended SHA-256 digest does not match the image")
    return digest_at + DIGEST_BYTES
