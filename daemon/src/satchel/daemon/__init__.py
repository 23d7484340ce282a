"""satcheld: the trio service that owns Satchel's cache and index metadata."""
