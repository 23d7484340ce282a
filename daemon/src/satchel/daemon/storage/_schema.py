"""The metadata database's schema, as the list of migrations that build it.

``PRAGMA user_version`` is the number of `MIGRATIONS` applied; each migration is a list of
statements run in one transaction together with the version bump (`satchel.daemon.storage.metadb`).
Append, never edit: a database written by an older daemon is brought up to date by the
migrations it has not seen, and an edited migration would never run on it.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "ORIGINS_SCHEMA", "SCHEMA_VERSION"]

#: The project -> index bindings (`satchel.daemon.indexes.origins`): migration 2.
ORIGINS_SCHEMA: tuple[str, ...] = (
    """CREATE TABLE project_origins (
        project TEXT PRIMARY KEY,
        origin TEXT NOT NULL,
        idx TEXT NOT NULL,
        how TEXT NOT NULL,
        bound_at REAL NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE project_absent (
        project TEXT NOT NULL,
        origin TEXT NOT NULL,
        seen_at REAL NOT NULL,
        PRIMARY KEY (project, origin)
    ) WITHOUT ROWID""",
)

#: Migration N (0-based) takes the schema from version N to N+1.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE pages (
            idx TEXT NOT NULL,
            project TEXT NOT NULL,
            page BLOB NOT NULL,
            fetched_at REAL NOT NULL,
            etag TEXT,
            last_modified TEXT,
            max_age INTEGER,
            PRIMARY KEY (idx, project)
        ) WITHOUT ROWID""",
        "CREATE INDEX pages_by_project ON pages (project)",
        """CREATE TABLE core_metadata (
            key TEXT PRIMARY KEY,
            data BLOB NOT NULL,
            stored_at REAL NOT NULL
        ) WITHOUT ROWID""",
        """CREATE TABLE core_metadata_names (
            idx TEXT NOT NULL,
            filename TEXT NOT NULL,
            key TEXT NOT NULL,
            PRIMARY KEY (idx, filename)
        ) WITHOUT ROWID""",
        """CREATE TABLE origins (
            sha256 TEXT NOT NULL,
            idx TEXT NOT NULL,
            project TEXT NOT NULL,
            filename TEXT NOT NULL,
            url TEXT NOT NULL,
            first_seen REAL NOT NULL,
            last_seen REAL NOT NULL,
            PRIMARY KEY (sha256, idx, project, filename, url)
        ) WITHOUT ROWID""",
        "CREATE INDEX origins_by_index ON origins (idx, project)",
        """CREATE TABLE blobs (
            sha256 TEXT PRIMARY KEY,
            size INTEGER NOT NULL,
            filename TEXT NOT NULL,
            added_at REAL NOT NULL,
            last_used REAL NOT NULL
        ) WITHOUT ROWID""",
        "CREATE INDEX blobs_by_last_used ON blobs (last_used)",
        """CREATE TABLE built_wheels (
            sdist_sha256 TEXT NOT NULL,
            interpreter_tag TEXT NOT NULL,
            wheel_sha256 TEXT NOT NULL,
            filename TEXT NOT NULL,
            built_at REAL NOT NULL,
            PRIMARY KEY (sdist_sha256, interpreter_tag)
        ) WITHOUT ROWID""",
        """CREATE TABLE state (
            key TEXT PRIMARY KEY,
            value BLOB NOT NULL,
            updated_at REAL NOT NULL
        ) WITHOUT ROWID""",
    ),
    ORIGINS_SCHEMA,
    (
        """CREATE TABLE page_files (
            idx TEXT NOT NULL,
            project TEXT NOT NULL,
            seq INTEGER NOT NULL,
            files BLOB NOT NULL,
            PRIMARY KEY (idx, project, seq)
        ) WITHOUT ROWID""",
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)
