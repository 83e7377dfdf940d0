"""Property-based fuzzing of every operation of the OpenAPI document (schemathesis): valid and
invalid requests alike never get a 500, never hang, and every error is a problem document."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.support.console import Console

EXAMPLES_PER_OPERATION = 6
REQUEST_TIMEOUT_S = 10.0
# Left out: the live event stream never ends by design (its own tests cover it); login would
# trip the per-address throttle that every other test of the session logs in through.
SKIPPED = {("GET", "/api/events"), ("POST", "/api/auth/login")}


def fuzz_operation(operation: Any, base_url: str, token: str) -> tuple[list[str], int]:
    """Requests from both generation modes: the problems found (empty: none), and how many
    requests were answered."""
    problems: list[str] = []
    answered: list[int] = []
    strategy = st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                         operation.as_strategy(GenerationMode.NEGATIVE))

    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def check(case: schemathesis.Case) -> None:
        headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
        try:
            reply = case.call(base_url=base_url, headers=headers, timeout=REQUEST_TIMEOUT_S)
        except requests.Timeout:
            problems.append(f"{case.method} {case.formatted_path}: no answer in "
                            f"{REQUEST_TIMEOUT_S} s")
            return
        except requests.ConnectionError as exc:
            problems.append(f"{case.method} {case.formatted_path}: connection broken ({exc})")
            return
        except Exception:  # the client library could not even send it
            return
        answered.append(reply.status_code)
        where = f"{case.method} {case.formatted_path} -> {reply.status_code}"
        if reply.status_code >= 500:
            problems.append(f"{where}: {reply.text[:200]}")
            return
        content_type = reply.headers.get("content-type") or [""]  # header name -> values
        if reply.status_code >= 400 and not content_type[0].startswith(
                "application/problem+json"):
            problems.append(f"{where}: {content_type[0]}")

    check()
    return problems, len(answered)


async def test_no_operation_answers_500_hangs_or_errs_without_a_problem(
        console: Console) -> None:
    async with httpx.AsyncClient(base_url=console.base_url, timeout=10) as http:
        document = (await http.get("/swagger/openapi.json")).json()
    schema = schemathesis.openapi.from_dict(document)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30
    token = console.token("admin")
    found: list[str] = []
    answered = 0
    for operation in operations:
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        problems, count = await asyncio.to_thread(fuzz_operation, operation, console.base_url,
                                                  token)
        found += problems
        answered += count
    assert not found, "\n".join(sorted(set(found))[:40])
    assert answered >= 3 * len(operations), answered


@pytest.mark.parametrize("path", ["/api/devices", "/api/firmware", "/api/alerts"])
async def test_nonsense_query_values_are_400_problems(console: Console, path: str) -> None:
    async with console.client("admin") as http:
        reply = await http.get(path, params={"limit": "lots", "offset": "-1"})
    assert 400 <= reply.status_code < 500
    assert reply.headers["content-type"].startswith("application/problem+json")
