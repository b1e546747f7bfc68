"""Inbound sources: verify each platform's signature and map its payloads to canonical events.

Only the modules in this package know the platforms' field names.
"""
