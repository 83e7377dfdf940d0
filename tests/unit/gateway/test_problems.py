"""Problem details for errors no route of the real gateway can be made to raise on demand:
an unexpected exception (500) and a failing service (502/503), through the real handlers."""

from __future__ import annotations

from litestar import Litestar, get
from litestar.testing import TestClient

from libs.common.errors import ConsoleError, ServiceUnavailable
from services.gateway.app import security_headers
from services.gateway.problems import EXCEPTION_HANDLERS


@get("/boom", sync_to_thread=False)
def boom() -> None:
    raise RuntimeError("secret internals /etc/passwd")


@get("/service-bug", sync_to_thread=False)
def service_bug() -> None:
    raise ConsoleError("KeyError in handler at repo.py:12")


@get("/down", sync_to_thread=False)
def down() -> None:
    raise ServiceUnavailable("no health service answers")


def app() -> Litestar:
    return Litestar([boom, service_bug, down], exception_handlers=EXCEPTION_HANDLERS,
                     before_send=[security_headers], debug=False, logging_config=None)


def test_an_unexpected_exception_is_a_500_problem_without_internals() -> None:
    with TestClient(app()) as client:
        for path in ("/boom", "/service-bug"):
            reply = client.get(path)
            assert reply.status_code == 500
            assert reply.headers["content-type"].startswith("application/problem+json")
            body = reply.json()
            assert set(body) == {"type", "title", "status", "detail"}
            assert body["detail"] == "the request could not be completed"
            assert "Traceback" not in reply.text and "passwd" not in reply.text
            assert "repo.py" not in reply.text
            assert reply.headers["x-content-type-options"] == "nosniff"


def test_a_service_down_is_503_with_retry_after() -> None:
    with TestClient(app()) as client:
        reply = client.get("/down")
    assert reply.status_code == 503
    assert reply.headers["retry-after"] == "5"
    assert reply.json()["detail"] == "no health service answers"
