-- hubflow history schema, version 1.
--
-- Times are INTEGER milliseconds since the Unix epoch, UTC (columns ending in
-- _ms). Runs are referred to from child tables by run_no, a compact integer
-- that is never reused (AUTOINCREMENT), so that the millions of event rows do
-- not repeat the human run id.

CREATE TABLE runs (
    run_no           INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT    NOT NULL UNIQUE,
    job              TEXT    NOT NULL,
    file_hash        TEXT    NOT NULL DEFAULT '',
    plan_hash        TEXT    NOT NULL DEFAULT '',
    vars             TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(vars)),
    triggered_by     TEXT    NOT NULL CHECK (triggered_by IN ('manual', 'schedule', 'resume')),
    window_name      TEXT    NOT NULL DEFAULT '',
    steps            TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(steps)),
    state            TEXT    NOT NULL CHECK (state IN ('pending', 'waiting_window', 'running', 'paused',
                                                       'succeeded', 'failed', 'aborted', 'cancelled')),
    reason           TEXT    NOT NULL DEFAULT '',
    n_pending        INTEGER NOT NULL DEFAULT 0,
    n_running        INTEGER NOT NULL DEFAULT 0,
    n_succeeded      INTEGER NOT NULL DEFAULT 0,
    n_failed         INTEGER NOT NULL DEFAULT 0,
    n_timed_out      INTEGER NOT NULL DEFAULT 0,
    n_skipped        INTEGER NOT NULL DEFAULT 0,
    created_ms       INTEGER NOT NULL,
    started_ms       INTEGER,
    ended_ms         INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    resume_requested INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX runs_by_created ON runs (created_ms);
CREATE INDEX runs_by_job ON runs (job, created_ms);
CREATE INDEX runs_by_state ON runs (state, created_ms);

-- run_devices is the resolved target set of a run and each device's current
-- position in it (its current step, that step's state and attempt), kept up
-- to date from the events by the writer. The current step's progress is in
-- executions.
CREATE TABLE run_devices (
    run_no      INTEGER NOT NULL REFERENCES runs (run_no) ON DELETE CASCADE,
    device_id   TEXT    NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('pending', 'invoking', 'in_progress',
                                                  'succeeded', 'failed', 'timed_out', 'skipped')),
    skip_reason TEXT    NOT NULL DEFAULT '',
    step        TEXT    NOT NULL DEFAULT '',
    step_index  INTEGER NOT NULL DEFAULT 0,
    attempt     INTEGER NOT NULL DEFAULT 0,
    error       TEXT    NOT NULL DEFAULT '',
    started_ms  INTEGER,
    ended_ms    INTEGER,
    PRIMARY KEY (run_no, device_id)
) WITHOUT ROWID;

CREATE INDEX run_devices_by_state ON run_devices (run_no, state);
CREATE INDEX run_devices_by_device ON run_devices (device_id);

-- executions holds one row per device and step of a run: the state derived
-- from that step's events.
CREATE TABLE executions (
    id            INTEGER PRIMARY KEY,
    run_no        INTEGER NOT NULL REFERENCES runs (run_no) ON DELETE CASCADE,
    device_id     TEXT    NOT NULL,
    step          TEXT    NOT NULL,
    step_index    INTEGER NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('pending', 'invoking', 'in_progress',
                                                    'succeeded', 'failed', 'timed_out', 'skipped')),
    attempt       INTEGER NOT NULL DEFAULT 0,
    method_status INTEGER,
    response      TEXT,
    progress      TEXT,
    progress_ms   INTEGER,
    error         TEXT    NOT NULL DEFAULT '',
    started_ms    INTEGER,
    invoked_ms    INTEGER,
    ended_ms      INTEGER,
    updated_ms    INTEGER NOT NULL,
    UNIQUE (run_no, device_id, step)
);

-- Serves the per-step outcome counts and the p50/p95 step durations of
-- `hubflow show` without reading the table. Partial (finished executions
-- only), so that the transitions before the end do not touch it.
CREATE INDEX executions_finished ON executions (run_no, step, state, ended_ms - started_ms)
    WHERE ended_ms IS NOT NULL;

-- events is the append-only log every other table is derived from.
CREATE TABLE events (
    id            INTEGER PRIMARY KEY,
    run_no        INTEGER NOT NULL REFERENCES runs (run_no) ON DELETE CASCADE,
    device_id     TEXT    NOT NULL,
    step          TEXT    NOT NULL,
    kind          TEXT    NOT NULL CHECK (kind IN ('state', 'progress', 'note')),
    state         TEXT,
    attempt       INTEGER,
    progress      TEXT,
    method_status INTEGER,
    response      TEXT,
    detail        TEXT,
    error         TEXT,
    observed_ms   INTEGER NOT NULL
);

CREATE INDEX events_by_device ON events (run_no, device_id);
