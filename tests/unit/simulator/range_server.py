"""A small HTTP file server with `Range` support, in a thread, for download tests.

`cut_first_at` makes the first response stop after that many body bytes and close the socket
(a GSM link dying on the server's side). `requests` records (range header, X-Device-Id).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


@dataclass
class Served:
    body: bytes
    url: str = ""
    cut_first_at: int | None = None
    ignore_range: bool = False
    requests: list[tuple[str | None, str | None]] = field(default_factory=list)


def _handler(served: Served) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if not self.path.startswith("/firmware/"):
                self.send_error(404)
                return
            header = self.headers.get("Range")
            served.requests.append((header, self.headers.get("X-Device-Id")))
            body, total = served.body, len(served.body)
            match = _RANGE.fullmatch(header or "")
            if match and not served.ignore_range:
                start = int(match.group(1))
                end = min(int(match.group(2) or total - 1), total - 1)
                if start >= total:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{total}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                part = body[start:end + 1]
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end}/{total}")
            else:
                part = body
                self.send_response(200)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(len(part)))
            self.end_headers()
            if served.cut_first_at is not None:
                cut, served.cut_first_at = served.cut_first_at, None
                self.wfile.write(part[:cut])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(part)

    return Handler


@contextmanager
def range_server(body: bytes, **options: object) -> Iterator[Served]:
    served = Served(body, **options)  # type: ignore[arg-type]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(served))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    served.url = f"http://127.0.0.1:{server.server_address[1]}/firmware/app.bin"
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
