"""Satchel's wire protocol (sans-I/O)."""
