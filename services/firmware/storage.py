"""Where binaries live: content-addressed by SHA-256, so the same image is never written twice.

Only a digest ever becomes a name (64 hex digits, checked), so no user input reaches a path.
The folder backend keeps `<root>/<sha[:2]>/<sha>.bin` and its temporary uploads in `<root>/tmp`
(same file system: the final move is an atomic rename). The S3 backend is in storage_s3.py;
app.py picks one from ACUVIM_FIRMWARE_STORAGE.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from pathlib import Path
from typing import Protocol

from libs.common.errors import NotFound

_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class Storage(Protocol):
    def temp_folder(self) -> Path: ...

    async def put(self, digest: str, source: Path) -> None:
        """Take `source` (a finished temp file) as the object `digest`; keep an existing one."""

    async def read(self, digest: str, offset: int, length: int) -> bytes: ...

    async def delete(self, digest: str) -> None: ...


def file_path(digest: str) -> str:
    if not _DIGEST.match(digest):
        raise NotFound("no such firmware object")
    return f"{digest[:2]}/{digest}.bin"


class FolderStorage:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.temp_folder().mkdir(exist_ok=True)

    def temp_folder(self) -> Path:
        return self.root / "tmp"

    def _path(self, digest: str) -> Path:
        return self.root / file_path(digest)

    async def put(self, digest: str, source: Path) -> None:
        await asyncio.to_thread(self._put, self._path(digest), source)

    @staticmethod
    def _put(target: Path, source: Path) -> None:
        if target.exists():
            source.unlink(missing_ok=True)
            return
        target.parent.mkdir(exist_ok=True)
        os.replace(source, target)

    async def read(self, digest: str, offset: int, length: int) -> bytes:
        return await asyncio.to_thread(self._read, self._path(digest), offset, length)

    @staticmethod
    def _read(path: Path, offset: int, length: int) -> bytes:
        try:
            with path.open("rb") as f:
                f.seek(offset)
                return f.read(length)
        except FileNotFoundError:
            raise NotFound("the firmware binary is missing from storage") from None

    async def delete(self, digest: str) -> None:
        path = self._path(digest)
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(path.unlink)

