"""Firmware transfer through the gateway: a 16 MiB upload and downloads in constant memory.

    .venv/bin/python bench/firmware_transfer.py [--size-mib 15] [--parallel 8]

Starts a gateway and a firmware service of their own, uploads one image near the size limit
(multipart, streamed to the service in 256 KiB chunks), then downloads it whole by `parallel`
clients at once. Prints MB/s for each and the resident memory (VmHWM, the peak) of the gateway
and firmware processes: what must stay flat however big the file (nothing holds it whole).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from tests.support.console import Console  # noqa: E402
from tests.support.esp_image import build_image  # noqa: E402


def rss_mb(console: Console, name: str) -> tuple[float, float]:
    """(current, peak) resident memory of a service process in MB."""
    status = Path(f"/proc/{console.processes[name][0].pid}/status").read_text()
    fields = {line.split(":")[0]: line.split()[1] for line in status.splitlines()
              if line.startswith(("VmRSS", "VmHWM"))}
    return int(fields["VmRSS"]) / 1024, int(fields["VmHWM"]) / 1024


async def download(client: httpx.AsyncClient, url: str) -> str:
    hasher = hashlib.sha256()
    async with client.stream("GET", url) as reply:
        async for piece in reply.aiter_bytes():
            hasher.update(piece)
    return hasher.hexdigest()


async def run(size_mib: float, parallel: int) -> None:
    console = Console.for_session(Path(tempfile.mkdtemp(prefix="bench-fw-")))
    console.start("firmware", "gateway")
    try:
        await console.wait_healthy(services=("firmware",), timeout_s=60)
        image = build_image("1.0.0", code_bytes=int(size_mib * 1024 * 1024))
        digest = hashlib.sha256(image).hexdigest()
        print(f"image {len(image) / 1e6:.1f} MB")
        before = {n: rss_mb(console, n) for n in ("gateway", "firmware")}
        async with console.client("admin", timeout=120) as admin:
            started = time.perf_counter()
            reply = await admin.post("/api/firmware", files={"file": ("fw.bin", image)},
                                     data={"version": "1.0.0"})
            upload_s = time.perf_counter() - started
            assert reply.status_code == 201, reply.text
            print(f"upload   {len(image) / 1e6 / upload_s:7.1f} MB/s ({upload_s:.2f} s)")
            started = time.perf_counter()
            digests = await asyncio.gather(*(download(admin, "/api/firmware/download/1.0.0")
                                             for _ in range(parallel)))
            download_s = time.perf_counter() - started
            assert set(digests) == {digest}
            total = len(image) * parallel
            print(f"download {total / 1e6 / download_s:7.1f} MB/s total, {parallel} clients "
                  f"({download_s:.2f} s)")
        for name in ("gateway", "firmware"):
            now, peak = rss_mb(console, name)
            print(f"{name:8} RSS {before[name][0]:6.1f} MB before, {now:6.1f} MB after, "
                  f"peak {peak:6.1f} MB")
    finally:
        console.stop_all()
        await console.delete_streams()
        await console.drop_database()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=float, default=15.0)
    parser.add_argument("--parallel", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(run(args.size_mib, args.parallel))


if __name__ == "__main__":
    main()
