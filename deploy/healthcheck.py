"""Container health check: `python -m deploy.healthcheck <service>`, exit 0 healthy, 1 not.

The gateway is asked over HTTP on its own port: it is alive when it answers /api/health at all
with its own part "ok" (a 503 that only says a service *behind* it is down must not make Docker
restart a healthy gateway). A backend service is asked `{root}.rpc.<service>.health` over NATS;
the request goes to the service's queue group, so with several replicas it proves that the
service answers, which is what its dependants need (a hung replica stops taking requests and is
then caught by its own metrics and logs, see deploy/SCALING.md).

The service defaults to ACUVIM_SERVICE, so the image's HEALTHCHECK needs no argument.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import urllib.error
import urllib.request

from libs.common.bus import connect
from libs.common.errors import ConsoleError
from libs.common.rpc import RpcClient
from libs.common.settings import Settings, SettingsError, load_settings
from libs.common.subjects import SERVICES, Subjects

# Docker kills a check that runs past its own timeout (5 s in the compose file): stay below it.
CHECK_TIMEOUT_S = 3.0
GATEWAY = "gateway"


def gateway_alive(settings: Settings, timeout_s: float = CHECK_TIMEOUT_S) -> tuple[bool, str]:
    """The gateway answers /api/health and reports its own part as ok."""
    # Inside a container the gateway listens on 0.0.0.0; the check always asks over loopback.
    host = "127.0.0.1" if settings.http_host in ("0.0.0.0", "", "::") else settings.http_host
    url = f"http://{host}:{settings.http_port}/api/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as reply:
            status, body = reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except (OSError, TimeoutError) as exc:
        return False, f"gateway does not answer at {url}: {exc}"
    if status == 200:
        return True, "gateway ok"
    try:
        own = json.loads(body).get("services", {}).get(GATEWAY)
    except (ValueError, AttributeError):
        own = None
    if status == 503 and own == "ok":
        return True, "gateway ok (a service behind it is down)"
    return False, f"gateway answered {status}: {body[:200]!r}"


async def service_alive(settings: Settings, service: str,
                        timeout_s: float = CHECK_TIMEOUT_S) -> tuple[bool, str]:
    """Some replica of `service` answers its health operation over NATS."""
    try:
        nc = await asyncio.wait_for(connect(settings.nats_url, f"healthcheck-{service}"),
                                    timeout=timeout_s)
    except Exception as exc:  # refused, unreachable, timed out: all mean "not healthy"
        return False, f"NATS not reachable at {settings.nats_url}: {type(exc).__name__}"
    try:
        rpc = RpcClient(nc, Subjects(settings.bus_root), timeout_s=timeout_s)
        await rpc.call(service, "health")
    except ConsoleError as exc:
        return False, f"{service}: {exc.detail}"
    finally:
        await nc.close()
    return True, f"{service} ok"


def check(service: str, settings: Settings) -> tuple[bool, str]:
    if service == GATEWAY:
        return gateway_alive(settings)
    if service not in SERVICES:
        known = ", ".join((GATEWAY, *SERVICES))
        return False, f"unknown service {service!r} (expected one of {known})"
    return asyncio.run(service_alive(settings, service))


def main(argv: list[str]) -> int:
    service = argv[0] if argv else os.environ.get("ACUVIM_SERVICE", "")
    if not service:
        print("usage: python -m deploy.healthcheck <service> (or set ACUVIM_SERVICE)",
              file=sys.stderr)
        return 2
    # The check's own disconnect is not news: only its one line of verdict goes to Docker's log.
    logging.basicConfig(level=logging.ERROR)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"bad setting: {exc}", file=sys.stderr)
        return 1
    healthy, why = check(service, settings)
    print(why, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
