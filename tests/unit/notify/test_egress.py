"""Where webhooks may connect (SSRF): the address classifier, allowed networks, the setting, and
the sender against a real local HTTP receiver: refused addresses get no request, allowed ones
do, and the connection goes to the address that was checked (DNS rebinding)."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from libs.common.settings import SettingsError, load_settings
from services.notify.delivery import WebhookSender
from services.notify.egress import (
    EgressPolicy,
    IPAddress,
    RefusedAddress,
    non_public_kind,
)
from services.notify.schemas import Outgoing
from tests.integration.notify.receivers import WebhookReceiver

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


@pytest.mark.parametrize(("address", "kind"), [
    # IPv4
    ("127.0.0.1", "loopback"), ("127.255.255.254", "loopback"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("172.31.255.255", "private"),
    ("192.168.1.1", "private"), ("169.254.169.254", "link-local"),
    ("0.0.0.0", "unspecified"), ("0.1.2.3", "private"), ("100.64.0.1", "not globally routable"),
    ("100.127.255.254", "not globally routable"), ("192.0.0.1", "private"),
    ("192.0.2.10", "private"), ("198.18.0.1", "private"), ("198.51.100.7", "private"),
    ("203.0.113.9", "private"), ("224.0.0.1", "multicast"), ("239.255.255.250", "multicast"),
    ("240.0.0.1", "private"), ("255.255.255.255", "private"),
    ("93.184.216.34", None), ("8.8.8.8", None), ("1.1.1.1", None), ("172.32.0.1", None),
    ("100.128.0.1", None), ("192.169.0.1", None),
    # IPv6
    ("::1", "loopback"), ("::", "unspecified"), ("fe80::1", "link-local"),
    ("fc00::1", "private"), ("fd12:3456::1", "private"), ("fec0::1", "site-local"),
    ("ff02::1", "multicast"), ("ff0e::1", "multicast"), ("2001:db8::1", "private"),
    ("::7f00:1", "reserved"), ("100::1", "private"),
    ("2606:2800:220:1:248:1893:25c8:1946", None), ("2001:4860:4860::8888", None),
    # IPv6 standing for IPv4: mapped, 6to4, NAT64
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"),
    ("::ffff:169.254.169.254", "link-local"), ("::ffff:100.64.0.1", "not globally routable"),
    ("::ffff:93.184.216.34", None), ("2002:7f00:1::1", "loopback"),
    ("2002:a9fe:a9fe::1", "link-local"), ("2002:5db8:d822::1", None),
    ("64:ff9b::a00:1", "private"), ("64:ff9b::5db8:d822", None),
])
def test_addresses_are_classified(address: str, kind: str | None) -> None:
    assert non_public_kind(ipaddress.ip_address(address)) == kind


def test_an_allowed_network_opens_its_private_addresses_only() -> None:
    policy = EgressPolicy([ipaddress.ip_network("10.1.0.0/16"), ipaddress.ip_network("fd00::/8")])
    assert policy.refusal(ipaddress.ip_address("10.1.2.3")) is None
    assert policy.refusal(ipaddress.ip_address("::ffff:10.1.2.3")) is None
    assert policy.refusal(ipaddress.ip_address("fd00::5")) is None
    assert policy.refusal(ipaddress.ip_address("10.2.0.1")) == "private"
    assert policy.refusal(ipaddress.ip_address("127.0.0.1")) == "loopback"
    assert policy.refusal(ipaddress.ip_address("169.254.169.254")) == "link-local"
    assert policy.refusal(ipaddress.ip_address("93.184.216.34")) is None
    assert EgressPolicy().refusal(ipaddress.ip_address("10.1.2.3")) == "private"


def test_the_setting_is_a_list_of_networks() -> None:
    assert load_settings({}).notify_allowed_networks == ()
    assert load_settings({"ACUVIM_NOTIFY_ALLOWED_NETWORKS": " 10.1.0.0/16, fd00::/8 ,"}
                         ).notify_allowed_networks == (ipaddress.ip_network("10.1.0.0/16"),
                                                       ipaddress.ip_network("fd00::/8"))
    for bad in ("10.1.2.3/16", "10.0.0.0/33", "intranet"):
        with pytest.raises(SettingsError, match="ACUVIM_NOTIFY_ALLOWED_NETWORKS"):
            load_settings({"ACUVIM_NOTIFY_ALLOWED_NETWORKS": bad})


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/hook", "http://[::1]:8080/hook", "http://169.254.169.254/latest/meta-data",
    "https://10.0.0.5/hook", "http://[::ffff:127.0.0.1]/hook", "http://localhost:9/hook",
    # Spellings of 127.0.0.1 that the resolver understands.
    "http://2130706433/hook", "http://0x7f000001/hook", "http://127.1/hook",
])
async def test_urls_on_refused_addresses_are_refused(url: str) -> None:
    with pytest.raises(RefusedAddress, match="not a public address"):
        await EgressPolicy().check_url(url, timeout_s=2)


# -- the sender, against a real receiver ---------------------------------------------------------
@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    r = await WebhookReceiver().start()
    yield r
    await r.stop()


def outgoing(url: str) -> Outgoing:
    return Outgoing(id="d-1", rule_id="r-1", event="test", device_id=None,
                    occurred_at=datetime.now(UTC), data={}, attempts=1,
                    created_at=datetime.now(UTC), target_kind="webhook", url=url,
                    secret="whsec_test", addresses=None)


async def send(policy: EgressPolicy, url: str) -> tuple[bool, bool, str | None]:
    sender = WebhookSender(policy, timeout_s=5)
    try:
        outcome = await sender.send(outgoing(url))
    finally:
        await sender.close()
    return outcome.delivered, outcome.retry, outcome.error


async def test_a_refused_address_gets_no_request_and_is_not_retried(
        receiver: WebhookReceiver) -> None:
    for host in ("127.0.0.1", "localhost"):
        delivered, retry, error = await send(EgressPolicy(),
                                             f"http://{host}:{receiver.port}/hook")
        assert (delivered, retry) == (False, False)
        assert error is not None and f"{host} " in error and "is loopback" in error
    assert "127.0.0.1" not in str(error)  # what a name resolves to is not told to the operator
    assert receiver.requests == []


async def test_an_allowed_network_is_reached_by_address_and_by_name(
        receiver: WebhookReceiver) -> None:
    policy = EgressPolicy([LOOPBACK])
    for host in ("127.0.0.1", "localhost"):
        assert await send(policy, f"http://{host}:{receiver.port}/hook") == (True, False, None)
    assert [r.headers["host"] for r in receiver.requests] == [
        f"127.0.0.1:{receiver.port}", f"localhost:{receiver.port}"]


async def test_the_connection_goes_to_the_address_that_was_checked(
        receiver: WebhookReceiver) -> None:
    """A name whose DNS answer changes after the check (rebinding): a resolver of our own
    answers the allowed 127.0.0.1 first, the metadata service's address after. The system
    resolver knows no `hooks.rebind.test`, so a delivery reaches the receiver only if it
    connects to the very address the first answer gave."""
    answers: list[list[IPAddress]] = [[ipaddress.ip_address("127.0.0.1")],
                                      [ipaddress.ip_address("169.254.169.254")]]
    asked: list[str] = []

    async def rebinding(host: str, port: int) -> list[IPAddress]:
        asked.append(host)
        return answers[min(len(asked), len(answers)) - 1]

    policy = EgressPolicy([LOOPBACK], resolver=rebinding)
    url = f"http://hooks.rebind.test:{receiver.port}/hook"
    sender = WebhookSender(policy, timeout_s=5)
    assert sender.client.follow_redirects is False  # a redirect would go unchecked
    try:
        assert (await sender.send(outgoing(url))).delivered
        assert asked == ["hooks.rebind.test"]  # resolved once, for the check and the connection
        [got] = receiver.requests
        assert got.headers["host"] == f"hooks.rebind.test:{receiver.port}"
        # The next connection resolves again and is refused: each connection is checked.
        again = await sender.send(outgoing(url))
        assert not again.delivered and not again.retry
        assert again.error is not None and "is link-local" in again.error
        assert len(receiver.requests) == 1
    finally:
        await sender.close()

