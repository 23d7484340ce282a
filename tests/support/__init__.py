"""Shared test helpers: wheel builders, loopback indexes, daemon processes."""
