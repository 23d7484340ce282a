"""The `satchel` command: a thin client for the Satchel daemon."""
