// Package state owns hubflow's run history: the SQLite schema and its
// embedded migrations, the single writer that batches a run's events into
// transactions, run control flags shared between processes, and the queries
// behind `hubflow history`, `show`, `device` and `prune`.
//
// The store records what it is given. Deciding what happens to a device,
// when, and what counts as success belongs to the runner; redacting secrets
// out of variables before they reach the store belongs to the runner as well
// (the store masks connection-string keys and SAS signatures it happens to
// see only as a safety net). Rendering belongs to cmd/hubflow.
//
// Every table and column is described in docs/schema.md for ad-hoc SQL.
package state
