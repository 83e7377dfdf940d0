"""Shared checks of the security tests."""

from __future__ import annotations

import httpx

PROBLEM_JSON = "application/problem+json"


def assert_problem(reply: httpx.Response, *statuses: int) -> None:
    assert reply.status_code in statuses, (reply.status_code, reply.text[:300])
    assert reply.headers["content-type"].startswith(PROBLEM_JSON), reply.headers
    body = reply.json()
    assert body["status"] == reply.status_code and body["title"] and "detail" in body
