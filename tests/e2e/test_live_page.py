"""The live fleet page in headless Chromium: sign in, a device registers and beats over MQTT and
its row appears and turns online without a reload; the stream drops, events happen meanwhile,
and they arrive once it reconnects (resumed from the last event id)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.console import Console
from tests.support.mqtt import publish

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
UI_TIMEOUT_MS = 15_000

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="needs Debian's chromium at /usr/bin/chromium: run `make browser`"),
]


@pytest.fixture
async def page(console: Console) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                           args=CHROMIUM_ARGS)
        try:
            tab = await browser.new_page()
            tab.set_default_timeout(UI_TIMEOUT_MS)
            tab.csp_errors = []
            tab.on("console", lambda msg: tab.csp_errors.append(msg.text)
                   if "Content Security Policy" in msg.text else None)
            yield tab
        finally:
            await browser.close()


async def test_the_fleet_page_updates_live_and_catches_up_after_a_disconnect(
        console: Console, page: Any, device_id: str) -> None:
    from playwright.async_api import expect

    await page.goto(console.base_url + "/")
    await page.fill("#email", "admin@example.com")
    await page.fill("#password", "admin-password-1")
    await page.click("button[type=submit]")
    await expect(page.locator("#live")).to_have_attribute("data-state", "live")

    await publish("devices/register", {"device_id": device_id, "firmware_version": "1.4.2"})
    row = page.locator(f'#fleet tr[data-device-id="{device_id}"]')
    await expect(row).to_have_count(1)
    await publish(f"{console.topic_prefix}/{device_id}/heartbeat",
                  {"ts": time.time(), "signal_strength": -61, "firmware_version": "1.4.2"})
    await expect(row.locator('td[data-field="status"]')).to_have_text("online")
    await expect(row.locator('td[data-field="signal"]')).to_have_text("-61 dBm")
    await expect(row.locator('td[data-field="firmware"]')).to_have_text("1.4.2")

    # The stream drops; the device goes offline and comes back while nobody listens.
    await page.evaluate("window.acuvimLive.disconnect()")
    last_seen = int(await page.evaluate("window.acuvimLive.lastEventId"))
    missed = page.locator(f'#events li[data-device-id="{device_id}"]'
                          '[data-event="device_status_changed"]')
    await expect(missed).to_have_count(1)  # the first online only, so far
    await publish(f"{console.topic_prefix}/{device_id}/status", "offline")
    async with console.client("viewer") as http:
        await _wait_status(http, device_id, "offline")
    await expect(row.locator('td[data-field="status"]')).to_have_text("online")  # not live now

    await page.evaluate("window.acuvimLive.connect()")
    await expect(page.locator("#live")).to_have_attribute("data-state", "live")
    await expect(row.locator('td[data-field="status"]')).to_have_text("offline")
    await expect(missed).to_have_count(2)
    resumed_id = int(await missed.first.get_attribute("data-event-id"))
    assert resumed_id > last_seen
    assert page.csp_errors == []


async def _wait_status(http: Any, device_id: str, status: str) -> None:
    from tests.support.waiting import eventually

    async def probe() -> bool:
        reply = await http.get(f"/api/devices/{device_id}")
        return bool(reply.status_code == 200 and reply.json()["status"] == status)

    await eventually(probe, what=f"{device_id} {status}")
