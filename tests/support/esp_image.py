"""Build ESP32 application images for tests (the layout of esptool's elf2image output).

    image = build_image("1.2.0")                      # valid, SHA-256 appended
    image = build_image("1.2.0", hash_appended=False)
A real esptool (`python -m esptool --chip esp32 image_info`) reads them as an independent check.
"""

from __future__ import annotations

import hashlib
import random
import struct

DROM_ADDRESS = 0x3F400020  # flash-mapped data: the application description lives here
IROM_ADDRESS = 0x400D0020  # flash-mapped code
ENTRY_ADDRESS = 0x400D1000


def app_description(version: str, project: str, idf_version: str,
                    magic: int = 0xABCD5432) -> bytes:
    """esp_app_desc_t (256 bytes)."""
    desc = struct.pack(
        "<II8s32s32s16s16s32s32s", magic, 0, b"", version.encode(), project.encode(),
        b"10:00:00", b"Dec  4 2025", idf_version.encode(),
        hashlib.sha256(project.encode()).digest(),
    )
    return desc.ljust(256, b"\0")


def segment(address: int, data: bytes) -> bytes:
    padded = data.ljust((len(data) + 3) // 4 * 4, b"\0")
    return struct.pack("<II", address, len(padded)) + padded


def checksum_of(segments_data: list[bytes]) -> int:
    value = 0xEF
    for data in segments_data:
        for byte in data:
            value ^= byte
    return value


def build_image(version: str = "1.2.0", *, project: str = "acuvim-gateway",
                idf_version: str = "v5.1.2", code_bytes: int = 8192, seed: int = 1,
                hash_appended: bool = True, app_magic: int = 0xABCD5432,
                two_segments: bool = True) -> bytes:
    rng = random.Random(seed)
    rodata = app_description(version, project, idf_version, app_magic) + rng.randbytes(512)
    datas = [rodata]
    if two_segments:
        datas.append(rng.randbytes(code_bytes))
    segs = [segment(DROM_ADDRESS, datas[0])]
    if two_segments:
        segs.append(segment(IROM_ADDRESS, datas[1]))
    padded_datas = [s[8:] for s in segs]
    header = struct.pack("<BBBBI", 0xE9, len(segs), 2, 0x20, ENTRY_ADDRESS)
    # wp_pin, spi drive[3], chip id (ESP32 = 0), min rev, min rev full, max rev full, reserved[4],
    # hash appended
    extended = struct.pack("<B3sHBHH4sB", 0xEE, b"\0\0\0", 0, 0, 0, 399, b"\0" * 4,
                           1 if hash_appended else 0)
    body = header + extended + b"".join(segs)
    body += b"\0" * (15 - len(body) % 16)
    body += bytes([checksum_of(padded_datas)])
    if hash_appended:
        body += hashlib.sha256(body).digest()
    return body


def bad_images() -> dict[str, bytes]:
    """Ten kinds of files that are not acceptable images, by what is wrong with them."""
    good = build_image("1.2.0")
    wrong_magic = b"\xE8" + good[1:]
    too_many = good[:1] + bytes([17]) + good[2:]
    beyond = bytearray(good)
    struct.pack_into("<I", beyond, 24 + 4, 10_000_000)  # first segment's length
    no_desc = build_image("1.2.0", app_magic=0x12345678)
    bad_digest = good[:-1] + bytes([good[-1] ^ 0xFF])
    unhashed = build_image("1.2.0", hash_appended=False)
    bad_checksum = unhashed[:-1] + bytes([unhashed[-1] ^ 0x01])
    png = b"\x89PNG\r\n\x1a\n" + b"\0\0\0\rIHDR" + random.Random(2).randbytes(200)
    return {
        "wrong magic": wrong_magic,
        "truncated": good[: len(good) // 2],
        "segment beyond file": bytes(beyond),
        "too many segments": too_many,
        "missing app description": no_desc,
        "bad appended digest": bad_digest,
        "bad checksum byte": bad_checksum,
        "png": png,
        "empty": b"",
        "random bytes": random.Random(3).randbytes(4096),
    }
