"""notify service wiring: settings, connections, senders, consumer and delivery loop.

Why a service of its own (not part of health): it only consumes facts (the EVENTS stream) and
talks to the outside world (webhook receivers, SMTP servers), whose failure modes (slow
receivers, retries for 24 h) must never slow health's heartbeat path; it scales and restarts
independently of the services that produce the facts; it owns its tables in schema `notify`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from libs.common.lifecycle import run_service
from libs.common.runtime import Runtime
from libs.common.settings import Settings
from services.notify import handlers
from services.notify.delivery import EmailSender, Senders, WebhookSender
from services.notify.dispatch import Dispatcher
from services.notify.egress import EgressPolicy
from services.notify.repo import Repo
from services.notify.service import FactRouter, RuleService

MIGRATIONS = Path(__file__).parent / "migrations"


async def main(settings: Settings, stopping: asyncio.Event) -> None:
    async with Runtime.open("notify", settings, stopping, migrations=MIGRATIONS) as rt:
        repo = Repo(rt.db)
        email = EmailSender(settings.smtp_url, settings.smtp_sender)
        egress = EgressPolicy(settings.notify_allowed_networks)
        senders = Senders(WebhookSender(egress), email)
        try:
            rules = RuleService(repo, senders, email_configured=email.configured, egress=egress)
            router = FactRouter(repo, quiet_period_s=settings.notify_quiet_period_s)
            dispatcher = Dispatcher(repo, senders, handlers.BusChannels(rt),
                                    retry_base_s=settings.notify_retry_base_s,
                                    pause_after_failures=settings.notify_pause_after_failures)
            handlers.register(rt, rules, router, dispatcher)
            await rt.serve()
        finally:
            await senders.close()


def run() -> None:
    run_service("notify", main)
