"""The workspace schema as ordered migrations. ``PRAGMA user_version`` holds how many ran.

Append new migrations; never edit one that shipped.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE users (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('admin', 'contributor', 'viewer')),
        created_at TEXT NOT NULL
    );
    CREATE TABLE connections (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        share TEXT NOT NULL CHECK (share IN ('admins', 'contributors')),
        config TEXT NOT NULL,
        secrets BLOB,
        profile_cap INTEGER,
        privacy_agreed_by TEXT NOT NULL,
        privacy_agreed_at TEXT NOT NULL,
        export_user TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE profiles (key TEXT PRIMARY KEY, attrs TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE segments (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL CHECK (kind IN ('static', 'filter')),
        expression TEXT,
        created_by TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE segment_members (
        segment_id INTEGER NOT NULL REFERENCES segments(id) ON DELETE CASCADE,
        profile_key TEXT NOT NULL,
        PRIMARY KEY (segment_id, profile_key)
    ) WITHOUT ROWID;
    CREATE TABLE exports (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        connection TEXT NOT NULL,
        connection_id INTEGER REFERENCES connections(id) ON DELETE SET NULL,
        segments TEXT NOT NULL,
        email_field TEXT NOT NULL,
        mapping TEXT NOT NULL,
        options TEXT NOT NULL,
        schedule TEXT,
        enabled INTEGER NOT NULL DEFAULT 1,
        owner TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE sync_state (
        export_id INTEGER NOT NULL REFERENCES exports(id) ON DELETE CASCADE,
        profile_key TEXT NOT NULL,
        email TEXT NOT NULL,
        record_hash BLOB NOT NULL,
        markers TEXT NOT NULL,
        PRIMARY KEY (export_id, profile_key)
    ) WITHOUT ROWID;
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        export_id INTEGER REFERENCES exports(id) ON DELETE SET NULL,
        export TEXT NOT NULL,
        status TEXT NOT NULL,
        trigger TEXT NOT NULL,
        user TEXT NOT NULL,
        pid INTEGER,
        host TEXT,
        started_at TEXT NOT NULL,
        heartbeat_at TEXT,
        finished_at TEXT,
        counts TEXT NOT NULL DEFAULT '{}',
        requests INTEGER NOT NULL DEFAULT 0,
        retries INTEGER NOT NULL DEFAULT 0,
        reject_file TEXT,
        error TEXT,
        plan TEXT,
        duration_s REAL
    );
    CREATE UNIQUE INDEX runs_one_running ON runs(export_id) WHERE status = 'running';
    CREATE INDEX runs_by_export ON runs(export, id);
    CREATE TABLE outcomes (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        profile_key TEXT NOT NULL,
        email TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT
    );
    CREATE INDEX outcomes_by_run ON outcomes(run_id, status);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        user TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    """,
    # 2: what makes delta runs cheap (issue 6). ``profiles.seq`` is the load that last changed a
    # profile; ``filter_members`` caches filter-segment membership up to ``segments.cached_seq``;
    # ``sync_state.seq``/``mapping`` say which profile version and data matching were delivered, so
    # the planner finds what changed in SQL; the email index serves its duplicate-address checks.
    """
    ALTER TABLE profiles ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX profiles_by_seq ON profiles(seq);
    ALTER TABLE segments ADD COLUMN cached_seq INTEGER;
    CREATE TABLE filter_members (
        segment_id INTEGER NOT NULL REFERENCES segments(id) ON DELETE CASCADE,
        profile_key TEXT NOT NULL,
        PRIMARY KEY (segment_id, profile_key)
    ) WITHOUT ROWID;
    ALTER TABLE sync_state ADD COLUMN seq INTEGER;
    ALTER TABLE sync_state ADD COLUMN mapping INTEGER;
    CREATE INDEX sync_state_by_email ON sync_state(export_id, email);
    """,
)
