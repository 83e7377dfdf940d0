"""Message types of the console (msgspec Structs), one module per domain.

`device` holds what devices sent (as ingest validated it) and what goes back to them;
`events` holds the facts published for other systems; the rest are request-reply payloads.
"""
