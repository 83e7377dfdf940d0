"""Prometheus metrics shared by every service, and the per-service /metrics server.

Service-specific metrics are declared in the service's own module with the `acuvim_` prefix.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

BUS_DISCONNECTS = Counter("acuvim_bus_disconnects_total", "NATS disconnections")
HANDLER_RETRIES = Counter(
    "acuvim_handler_retries_total", "Bus messages handed back for redelivery", ["consumer"]
)
DEAD_LETTERS = Counter("acuvim_dead_letters_total", "Messages moved to dead letters", ["subject"])
BUS_CONSUMER_PENDING = Gauge(
    "acuvim_bus_consumer_pending",
    "Messages of its stream a durable consumer has not received yet (its lag), as of its last "
    "fetch", ["stream", "consumer"],
)
RPC_REQUESTS = Counter(
    "acuvim_rpc_requests_total", "Request-reply calls served", ["operation", "outcome"]
)
RPC_SECONDS = Histogram("acuvim_rpc_seconds", "Time to serve a request-reply call", ["operation"])
UP = Gauge("acuvim_up", "1 while the service runs", ["service"])


def serve_metrics(port: int, service: str) -> None:
    """Serve /metrics on `port` (0: not served, e.g. the gateway serves them itself)."""
    UP.labels(service=service).set(1)
    if port:
        start_http_server(port, addr="127.0.0.1")
        log.info("metrics on :%d/metrics", port)
