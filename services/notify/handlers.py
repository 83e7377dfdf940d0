"""Transport of the notify service: RPC routes, the facts consumer, the delivery loop, and the
bus adapter the domain publishes through. Metrics are counted here."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg
from prometheus_client import Counter

from libs.common import bus
from libs.common.codec import decode
from libs.common.messages.events import (
    AlertChanged,
    CommandUpdated,
    DeviceDeleted,
    DeviceRegistered,
    DeviceStatusChanged,
    DeviceUpdated,
    FirmwareRolloutUpdated,
    NotificationRulePaused,
)
from libs.common.runtime import Runtime
from services.notify.dispatch import Dispatcher
from services.notify.schemas import CreateRule, ListDeliveries, ListRules, RuleRef, UpdateRule
from services.notify.service import FactRouter, RuleService

log = logging.getLogger(__name__)

ATTEMPTS = Counter("acuvim_notify_attempts_total",
                   "Delivery attempts by target kind and outcome (delivered, retry, failed)",
                   ["target", "outcome"])
RULES_PAUSED = Counter("acuvim_notify_rules_paused_total",
                       "Rules paused because their endpoint kept failing")
FACTS = Counter("acuvim_notify_facts_total", "Facts consumed, by kind", ["kind"])
# How often the worker looks for due deliveries (the latency of a notification's first try).
DELIVERY_PERIOD_S = 0.5
CONSUMER = "notify"


class BusChannels:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def rule_paused(self, fact: NotificationRulePaused) -> None:
        RULES_PAUSED.inc()
        log.warning("notification rule %s (%s) paused: %s", fact.rule_id, fact.name, fact.reason)
        await bus.publish_fact(self.rt.js, self.rt.subjects.notification_rule_paused(fact.rule_id),
                               fact, f"rule-paused-{fact.rule_id}-{int(fact.occurred_at)}")

    def attempted(self, target_kind: str, outcome: str) -> None:
        ATTEMPTS.labels(target=target_kind, outcome=outcome).inc()


def register(rt: Runtime, rules: RuleService, router: FactRouter,
             dispatcher: Dispatcher) -> None:
    route = rt.rpc.route
    route("rules.list", ListRules)(rules.list)
    route("rules.get", RuleRef)(rules.get)
    route("rules.create", CreateRule)(rules.create)
    route("rules.update", UpdateRule)(rules.update)
    route("rules.delete", RuleRef)(rules.delete)
    route("rules.test", RuleRef)(rules.test)
    route("deliveries.list", ListDeliveries)(rules.deliveries)

    routes = fact_routes(rt, router)
    # New facts only: a first start must not replay a day of history to people's phones; the
    # durable consumer then keeps its place across restarts.
    rt.consume(stream=rt.subjects.events_stream, durable=CONSUMER,
               filter_subjects=[f"{prefix}.*" for prefix in routes], deliver_new=True,
               handler=bus.each(lambda msg: on_fact(routes, msg)))
    rt.every("notify-deliveries", DELIVERY_PERIOD_S, dispatcher.tick)


FactHandler = Callable[[Msg, int], Awaitable[None]]


def fact_routes(rt: Runtime, router: FactRouter) -> dict[str, FactHandler]:
    """Subject prefix (without the key token) -> what to do with such a fact."""
    s = rt.subjects

    def prefix(subject: str) -> str:
        return subject.rsplit(".", 1)[0]

    async def registered(msg: Msg, _: int) -> None:
        fact = decode(msg.data, DeviceRegistered)
        await router.device_known(fact.device_id, fact.device, fact.occurred_at)

    async def updated(msg: Msg, _: int) -> None:
        fact = decode(msg.data, DeviceUpdated)
        await router.device_known(fact.device_id, fact.device, fact.occurred_at)

    async def deleted(msg: Msg, _: int) -> None:
        fact = decode(msg.data, DeviceDeleted)
        await router.device_deleted(fact.device_id, fact.occurred_at)

    async def status(msg: Msg, seq: int) -> None:
        await router.status_changed(decode(msg.data, DeviceStatusChanged), seq)

    async def opened(msg: Msg, seq: int) -> None:
        await router.alert(decode(msg.data, AlertChanged), False, seq)

    async def resolved(msg: Msg, seq: int) -> None:
        await router.alert(decode(msg.data, AlertChanged), True, seq)

    async def command(msg: Msg, seq: int) -> None:
        await router.command(decode(msg.data, CommandUpdated), seq)

    async def rollout(msg: Msg, seq: int) -> None:
        await router.rollout(decode(msg.data, FirmwareRolloutUpdated), seq)

    return {
        prefix(s.device_registered("x")): registered, prefix(s.device_updated("x")): updated,
        prefix(s.device_deleted("x")): deleted, prefix(s.device_status_changed("x")): status,
        prefix(s.alert_created("x")): opened, prefix(s.alert_resolved("x")): resolved,
        prefix(s.command_updated("x")): command,
        prefix(s.firmware_rollout_updated("x")): rollout,
    }


async def on_fact(routes: dict[str, FactHandler], msg: Msg) -> None:
    kind = msg.subject.rsplit(".", 1)[0]
    handler = routes.get(kind)
    if handler is None:  # the filter lets only routed subjects through
        return
    FACTS.labels(kind=kind.split(".", 1)[-1]).inc()
    await handler(msg, msg.metadata.sequence.stream)
