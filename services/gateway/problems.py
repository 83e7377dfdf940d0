"""Every error the gateway answers is an RFC 9457 problem document; never a stack trace."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, ValidationException

from libs.common.errors import ConsoleError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


def problem(status: int, detail: str, title: str | None = None,
            extra: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None) -> Response[dict[str, Any]]:
    phrase = title or _phrase(status)
    body: dict[str, Any] = {
        "type": f"https://acuvim.dev/problems/{phrase.lower().replace(' ', '-')}",
        "title": phrase,
        "status": status,
        "detail": detail,
    }
    if extra:
        body.update(extra)
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def console_error(_: Request[Any, Any, Any], exc: ConsoleError) -> Response[dict[str, Any]]:
    if exc.status >= 500 and exc.status != 503:
        log.error("service error: %s", exc.detail)
        return problem(exc.status, "the request could not be completed")
    headers: dict[str, str] = {}
    if exc.status == 503:
        headers["Retry-After"] = "5"
    if exc.status == 429:
        # An error that knows how long to wait (login throttling) says so; else a minute.
        headers["Retry-After"] = str(getattr(exc, "retry_after_s", 60))
    if exc.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return problem(exc.status, exc.detail, exc.title, headers=headers or None)


def validation_error(_: Request[Any, Any, Any],
                     exc: ValidationException) -> Response[dict[str, Any]]:
    errors = exc.extra if isinstance(exc.extra, list) else []
    # A well-formed body with wrong fields is 422; malformed JSON and bad query or path
    # parameters stay 400.
    body_errors = bool(errors) and all(
        isinstance(e, dict) and e.get("source") == "body" for e in errors)
    status = 422 if body_errors else 400
    return problem(status, exc.detail or "invalid request", extra={"errors": errors}
                   if errors else None)


def http_error(request: Request[Any, Any, Any],
               exc: HTTPException) -> Response[dict[str, Any]]:
    headers = dict(exc.headers or {})  # e.g. Allow on a 405
    if isinstance(exc, NotAuthorizedException):
        headers["WWW-Authenticate"] = "Bearer"
    if exc.status_code >= 500:
        log.error("http %s: %s", exc.status_code, exc.detail)
        return problem(exc.status_code, "the request could not be completed")
    detail = exc.detail if exc.detail and exc.detail != _phrase(exc.status_code) else (
        _phrase(exc.status_code))
    if exc.status_code == 404 and detail == _phrase(404):
        detail = f"no such path: {request.url.path}"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    return problem(exc.status_code, detail, headers=headers or None)


def unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(500, "the request could not be completed")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ConsoleError: console_error,
    ValidationException: validation_error,
    HTTPException: http_error,
    Exception: unexpected_error,
}

_ = MediaType  # re-exported for handlers that answer problems themselves
