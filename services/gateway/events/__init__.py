"""Live events of the gateway: one EVENTS subscription per process fanned out to SSE clients."""
