"""Webhooks may not reach private addresses (SSRF): refused when a rule is saved (400) on the
session console, which allows no private network; accepted on the notifications console, which
allows 127.0.0.0/8; refused again at delivery by a notify started without that allowance."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext

from tests.integration.notify.conftest import (
    SERVICES,
    alert_opened,
    create_rule,
    deliveries,
    new_device_id,
)
from tests.integration.notify.receivers import WebhookReceiver
from tests.support.console import Console
from tests.support.waiting import eventually

RULES = "/api/notifications/rules"
REFUSED_URLS = [
    ("http://127.0.0.1:8080/hook", "127.0.0.1 is loopback"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is link-local"),
    ("http://[::1]/hook", "::1 is loopback"),
    ("https://10.0.0.5/hook", "10.0.0.5 is private"),
    ("http://[::ffff:127.0.0.1]/hook", "::ffff:127.0.0.1 is loopback"),
    ("http://100.64.0.1/hook", "100.64.0.1 is not globally routable"),
    ("http://localhost:8080/hook", "localhost resolves to an address that is loopback"),
]


def rule_to(url: str) -> dict[str, Any]:
    return {"name": "ssrf", "events": ["alert_opened"], "target": {"kind": "webhook", "url": url}}


@pytest.mark.parametrize(("url", "detail"), REFUSED_URLS)
async def test_a_rule_to_a_private_address_is_refused(console: Console, url: str,
                                                      detail: str) -> None:
    async with console.client("operator") as http:
        reply = await http.post(RULES, json=rule_to(url))
    assert reply.status_code == 400, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json")
    problem = reply.json()
    assert detail in problem["detail"] and "ACUVIM_NOTIFY_ALLOWED_NETWORKS" in problem["detail"]


async def test_a_rule_may_not_be_moved_to_a_private_address(console: Console) -> None:
    async with console.client("operator") as http:
        created = await http.post(RULES, json=rule_to("https://hooks.example.com/acuvim"))
        assert created.status_code == 201, created.text
        path = f"{RULES}/{created.json()['id']}"
        moved = await http.put(path, json={"target": {"kind": "webhook",
                                                      "url": "http://169.254.169.254/"}})
        assert moved.status_code == 400, moved.text
        got = (await http.get(path)).json()
        assert got["target"]["url"] == "https://hooks.example.com/acuvim"
        assert (await http.put(path, json={"name": "renamed"})).status_code == 200
        await http.delete(path)


async def test_a_host_that_does_not_resolve_now_is_accepted_with_a_warning(
        console: Console) -> None:
    async with console.client("operator") as http:
        reply = await http.post(RULES, json=rule_to("https://hooks.acuvim.invalid/hook"))
        assert reply.status_code == 201, reply.text
        await http.delete(f"{RULES}/{reply.json()['id']}")
    await console.wait_log("notify", "webhook host hooks.acuvim.invalid does not resolve now")


async def test_an_allowed_network_is_accepted_and_no_other(notify_console: Console,
                                                 http: httpx.AsyncClient) -> None:
    for url in ("http://127.0.0.1:9/hook", "http://localhost:9/hook",
                "http://[::ffff:127.0.0.1]:9/hook"):
        await create_rule(http, {"kind": "webhook", "url": url}, ["rollout_paused"])
    # Only that network: the others stay closed.
    refused = await http.post(RULES, json=rule_to("http://169.254.169.254/"))
    assert refused.status_code == 400, refused.text


async def test_delivery_refuses_an_address_no_longer_allowed(
        notify_console: Console, js: JetStreamContext, http: httpx.AsyncClient,
        receiver: WebhookReceiver) -> None:
    """A rule saved while 127.0.0.0/8 was allowed; notify restarted without that allowance
    sends nothing there: the delivery fails at once (no retry) and the worker goes on."""
    rule = await create_rule(http, {"kind": "webhook", "url": receiver.url}, ["alert_opened"])
    notify_console.stop("notify")
    notify_console.start("notify", ACUVIM_NOTIFY_ALLOWED_NETWORKS="")
    try:
        await notify_console.wait_healthy(SERVICES, timeout_s=60)
        await alert_opened(js, notify_console, new_device_id())

        async def failed() -> list[Any]:
            return [d for d in await deliveries(http, rule["id"]) if d["status"] == "failed"]

        [logged] = await eventually(failed, timeout_s=15, what="a refused delivery")
        assert logged["attempts"] == 1
        assert "127.0.0.1 is loopback" in logged["last_error"]
        tested = (await http.post(f"{RULES}/{rule['id']}/test")).json()
        assert tested["status"] == "failed" and "loopback" in tested["last_error"]
        assert receiver.requests == []
        await notify_console.wait_healthy(SERVICES, timeout_s=10)  # the worker lives on
    finally:
        notify_console.stop("notify")
        notify_console.start("notify")
        await notify_console.wait_healthy(SERVICES, timeout_s=60)
