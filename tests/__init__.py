"""Satchel test suite."""
