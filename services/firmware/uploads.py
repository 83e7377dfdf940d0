"""Uploads in progress on this replica: chunks streamed to a temp file while hashed.

An upload lives only on the replica that began it (its chunk subject names the replica); an
upload idle for longer than UPLOAD_IDLE_S is dropped with its temp file.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from libs.common.errors import BadRequest, NotFound, TooLarge
from services.firmware.schemas import CHUNK_BYTES, MAX_IMAGE_BYTES

# A gateway streams chunks back to back; this much silence means the upload was abandoned.
UPLOAD_IDLE_S = 300.0


@dataclass
class Upload:
    upload_id: str
    actor: str
    path: Path
    file: IO[bytes]
    hasher: hashlib._Hash = field(default_factory=hashlib.sha256)
    size_bytes: int = 0
    next_seq: int = 0
    touched_at: float = field(default_factory=time.monotonic)

    @property
    def digest(self) -> str:
        return self.hasher.hexdigest()


class Uploads:
    def __init__(self, temp_folder: Path) -> None:
        self.temp_folder = temp_folder
        self._open: dict[str, Upload] = {}

    def begin(self, actor: str) -> Upload:
        upload_id = uuid.uuid4().hex
        path = self.temp_folder / f"{upload_id}.part"
        upload = Upload(upload_id=upload_id, actor=actor, path=path, file=path.open("wb"))
        self._open[upload_id] = upload
        return upload

    def get(self, upload_id: str) -> Upload:
        upload = self._open.get(upload_id)
        if upload is None:
            raise NotFound("no such upload (finished, aborted or expired)")
        upload.touched_at = time.monotonic()
        return upload

    def add_chunk(self, upload_id: str, seq: int, data: bytes) -> int:
        """Append a chunk; a repeated chunk (a retried request) is ignored. Answers the size."""
        upload = self.get(upload_id)
        if seq < upload.next_seq:
            return upload.size_bytes
        if seq != upload.next_seq:
            raise BadRequest(f"chunk {seq} arrived before chunk {upload.next_seq}")
        if len(data) > CHUNK_BYTES:
            raise BadRequest(f"a chunk may carry at most {CHUNK_BYTES} bytes")
        if upload.size_bytes + len(data) > MAX_IMAGE_BYTES:
            self.abort(upload_id)
            raise TooLarge(f"a firmware image may be at most {MAX_IMAGE_BYTES} bytes")
        upload.file.write(data)
        upload.hasher.update(data)
        upload.size_bytes += len(data)
        upload.next_seq += 1
        return upload.size_bytes

    def close(self, upload_id: str) -> Upload:
        """Stop taking chunks: the file is complete and handed to the caller."""
        upload = self.get(upload_id)
        del self._open[upload_id]
        upload.file.close()
        return upload

    def abort(self, upload_id: str) -> None:
        upload = self._open.pop(upload_id, None)
        if upload is not None:
            upload.file.close()
            upload.path.unlink(missing_ok=True)

    def expire(self, now: float | None = None) -> int:
        moment = time.monotonic() if now is None else now
        stale = [u.upload_id for u in self._open.values()
                 if moment - u.touched_at > UPLOAD_IDLE_S]
        for upload_id in stale:
            self.abort(upload_id)
        return len(stale)

    def abort_all(self) -> None:
        for upload_id in list(self._open):
            self.abort(upload_id)
