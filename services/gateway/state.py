"""What the gateway's handlers share: settings, the bus and its own database (users, tokens)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from libs.common.rpc import RpcClient
from libs.common.settings import Settings
from libs.common.subjects import Subjects


@dataclass
class GatewayState:
    settings: Settings
    subjects: Subjects
    nc: NATS
    js: JetStreamContext
    rpc: RpcClient
    pool: asyncpg.Pool
    jwt_secret: str
