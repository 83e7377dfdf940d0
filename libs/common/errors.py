"""One family of typed errors, shared by services, the bus and the gateway.

Each error carries the HTTP status the gateway answers with and a short title; services raise
them, the RPC layer carries them across NATS (as micro error headers) and the gateway turns them
into RFC 9457 problem details.
"""

from __future__ import annotations

from typing import ClassVar


class ConsoleError(Exception):
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title


class InvalidInput(ConsoleError):
    status = 422
    title = "Invalid input"


class BadRequest(ConsoleError):
    status = 400
    title = "Bad request"


class Unauthorized(ConsoleError):
    status = 401
    title = "Unauthorized"


class Forbidden(ConsoleError):
    status = 403
    title = "Forbidden"


class NotFound(ConsoleError):
    status = 404
    title = "Not found"


class Conflict(ConsoleError):
    status = 409
    title = "Conflict"


class TooLarge(ConsoleError):
    status = 413
    title = "Content too large"


class RangeNotSatisfiable(ConsoleError):
    status = 416
    title = "Range not satisfiable"


class TooManyRequests(ConsoleError):
    status = 429
    title = "Too many requests"


class ServiceUnavailable(ConsoleError):
    status = 503
    title = "Service unavailable"


_BY_STATUS: dict[int, type[ConsoleError]] = {
    cls.status: cls
    for cls in (
        InvalidInput, BadRequest, Unauthorized, Forbidden, NotFound, Conflict, TooLarge,
        RangeNotSatisfiable, TooManyRequests, ServiceUnavailable,
    )
}


def error_for_status(status: int, detail: str) -> ConsoleError:
    """Rebuild a typed error from a status code received over the bus."""
    return _BY_STATUS.get(status, ConsoleError)(detail)
