"""Senders: one attempt to deliver a notification by webhook (httpx) or e-mail (SMTP), and what
the outcome means for retrying.

Webhook: POST of the JSON body {id, event, occurred_at, device_id, data}, signed as
`X-Acuvim-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the rule's secret>` so a
receiver can verify it and refuse replays (a stale `t`); `X-Acuvim-Delivery` is the delivery
id, the same on every retry (an idempotency key). 2xx is delivered; a network error, a timeout,
408, 429 or 5xx is retried; any other answer (4xx, 3xx: redirects are not followed) is final.
Connections go only to addresses egress.py allows (checked at connect time, pinned against DNS
rebinding); a host that resolves to a refused address fails at once, finally.

E-mail: smtplib in a thread (a send is rare and short; no extra dependency), the same body as
text, `Message-ID` from the delivery id. 4xx answers and connection errors are retried, 5xx
answers are final.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import smtplib
import ssl
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import msgspec

from libs.common.codec import encode
from services.notify.egress import CheckedTransport, EgressPolicy, RefusedAddress
from services.notify.schemas import Outgoing

WEBHOOK_TIMEOUT_S = 10.0
SMTP_TIMEOUT_S = 10.0
RETRYABLE_STATUSES = frozenset({408, 429})
USER_AGENT = "acuvim-console-notify/1"
# The receiver's answer kept in the delivery log: enough to diagnose, never a whole page.
ERROR_TEXT_BYTES = 300


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    delivered: bool
    retry: bool = False
    error: str | None = None


DELIVERED = Outcome(delivered=True)


def body_of(out: Outgoing) -> bytes:
    return encode({"id": out.id, "event": out.event,
                   "occurred_at": out.occurred_at.astimezone(UTC).isoformat(),
                   "device_id": out.device_id, "data": out.data})


def sign(secret: str, body: bytes, timestamp_s: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp_s}.".encode() + body, hashlib.sha256)
    return f"t={timestamp_s},v1={digest.hexdigest()}"


def verify(secret: str, body: bytes, header: str, now_s: float, tolerance_s: float = 300) -> bool:
    """What a receiver does (and the tests): the signature matches and is recent."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp_s = int(parts["t"])
    except (KeyError, ValueError):
        return False
    expected = sign(secret, body, timestamp_s).split("v1=", 1)[1]
    return (abs(now_s - timestamp_s) <= tolerance_s
            and hmac.compare_digest(expected, parts.get("v1", "")))


def summary(out: Outgoing) -> str:
    """One line for an e-mail subject."""
    device = out.device_id or ""
    if out.event == "digest":
        return f"{out.data.get('count', 0)} notifications"
    if out.event in ("alert_opened", "alert_resolved"):
        what = "opened" if out.event == "alert_opened" else "resolved"
        return (f"{out.data.get('severity', '')} alert {what} on {device}: "
                f"{out.data.get('message', out.data.get('alert_type', ''))}")[:200]
    labels = {"device_offline": "went offline", "device_online": "is back online",
              "command_timed_out": "did not answer a command", "test": "test notification"}
    if out.event == "rollout_paused":
        return f"firmware rollout {out.data.get('version', '')} paused"
    return f"{device} {labels.get(out.event, out.event)}".strip()


class WebhookSender:
    def __init__(self, egress: EgressPolicy, timeout_s: float = WEBHOOK_TIMEOUT_S) -> None:
        # An explicit transport also keeps HTTP(S)_PROXY out: a proxy would connect on our
        # behalf to addresses nobody checked. Redirects would too: never followed.
        self.client = httpx.AsyncClient(transport=CheckedTransport(egress), timeout=timeout_s,
                                        follow_redirects=False,
                                        headers={"User-Agent": USER_AGENT})

    async def send(self, out: Outgoing) -> Outcome:
        if not out.url or not out.secret:
            return Outcome(delivered=False, error="the rule has no webhook URL or secret")
        body = body_of(out)
        headers = {"Content-Type": "application/json", "X-Acuvim-Delivery": out.id,
                   "X-Acuvim-Event": out.event,
                   "X-Acuvim-Signature": sign(out.secret, body, int(time.time()))}
        try:
            reply = await self.client.post(out.url, content=body, headers=headers)
        except RefusedAddress as exc:
            return Outcome(delivered=False, error=str(exc)[:ERROR_TEXT_BYTES])
        except httpx.HTTPError as exc:
            return Outcome(delivered=False, retry=True,
                           error=f"{type(exc).__name__}: {exc}"[:ERROR_TEXT_BYTES])
        if 200 <= reply.status_code < 300:
            return DELIVERED
        error = f"HTTP {reply.status_code}: {reply.text[:ERROR_TEXT_BYTES]}"
        retry = reply.status_code >= 500 or reply.status_code in RETRYABLE_STATUSES
        return Outcome(delivered=False, retry=retry, error=error)

    async def close(self) -> None:
        await self.client.aclose()


class EmailSender:
    def __init__(self, smtp_url: str | None, sender: str) -> None:
        self.smtp_url = smtp_url
        self.sender = sender

    @property
    def configured(self) -> bool:
        return self.smtp_url is not None

    async def send(self, out: Outgoing) -> Outcome:
        if self.smtp_url is None:
            return Outcome(delivered=False, error="ACUVIM_SMTP_URL is not set")
        if not out.addresses:
            return Outcome(delivered=False, error="the rule has no e-mail addresses")
        message = self.message(out)
        try:
            await asyncio.to_thread(self._send, message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            return Outcome(delivered=False, retry=all(400 <= c < 500 for c in codes),
                           error=f"recipients refused: {exc.recipients}"[:ERROR_TEXT_BYTES])
        except smtplib.SMTPResponseException as exc:
            return Outcome(delivered=False, retry=400 <= exc.smtp_code < 500,
                           error=f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"[:ERROR_TEXT_BYTES])
        except (OSError, smtplib.SMTPException) as exc:
            return Outcome(delivered=False, retry=True,
                           error=f"{type(exc).__name__}: {exc}"[:ERROR_TEXT_BYTES])
        return DELIVERED

    def message(self, out: Outgoing) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = ", ".join(out.addresses or [])
        message["Subject"] = f"[Acuvim] {summary(out)}"
        message["Message-ID"] = f"<{out.id}@acuvim-console>"
        message["Date"] = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
        message["X-Acuvim-Delivery"] = out.id
        pretty: Any = msgspec.json.format(body_of(out), indent=2)
        message.set_content(pretty.decode())
        return message

    def _send(self, message: EmailMessage) -> None:
        assert self.smtp_url is not None
        url = urlsplit(self.smtp_url)
        host = url.hostname or "localhost"
        if url.scheme == "smtps":
            client: smtplib.SMTP = smtplib.SMTP_SSL(host, url.port or 465,
                                                    timeout=SMTP_TIMEOUT_S,
                                                    context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(host, url.port or 25, timeout=SMTP_TIMEOUT_S)
        with client:
            if url.scheme == "smtp":
                client.ehlo()
                if client.has_extn("starttls"):
                    client.starttls(context=ssl.create_default_context())
            if url.username:
                client.login(unquote(url.username), unquote(url.password or ""))
            client.send_message(message)


class Senders:
    """The sender of each target kind."""

    def __init__(self, webhook: WebhookSender, email: EmailSender) -> None:
        self.webhook = webhook
        self.email = email

    async def send(self, out: Outgoing) -> Outcome:
        if out.target_kind == "webhook":
            return await self.webhook.send(out)
        return await self.email.send(out)

    async def close(self) -> None:
        await self.webhook.close()
