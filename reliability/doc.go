// Package reliability holds hubflow's end-to-end fault matrix: tests that
// kill the hubflow process at random moments during a run and resume it,
// inject hub faults (throttling storms, 5xx bursts, latency, dropped and
// unanswered methods, devices dropped by the MQTT side), break the history
// database under a running run, restart the emulator, feed hostile job files
// to the CLI, and look for secrets where none may be. Each test compares
// what hubflow recorded with what the emulator saw happen (its invocation and
// reported-property logs are the witness).
//
// It has no code of its own beyond its tests: the behaviour under test
// belongs to runner, state, jobs, emulator and cmd/hubflow, and each of those
// packages keeps its own unit tests. Tests here start the emulator and the
// simulated fleet in process and run hubflow as a child process built from
// cmd/hubflow. Set HUBFLOW_SOAK=1 for a longer kill matrix,
// HUBFLOW_KILL_SEED to replay one, HUBFLOW_RELIABILITY_DEBUG=1 to see the
// in-process runners' debug logs, and HUBFLOW_RELIABILITY_BIN to use a
// prebuilt hubflow (for running the compiled tests as an unprivileged
// user, where file permissions bind).
//
// Where a test finds a behaviour that its owners know of and have yet to
// change, it says so and skips rather than fails, provided nothing else
// went wrong; the skip message names the behaviour.
package reliability
