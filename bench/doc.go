// Package bench measures hubflow end to end, as `hubflow bench` reports it:
// for each fleet size it starts an IoT hub emulator and a simulated fleet
// (in this process, or as child processes when the fleet needs more file
// descriptors than one process may hold), runs one job through the real
// runner and a real SQLite store, and sets the result beside two figures
// measured in the same run against the same hub and devices: the limit (bare
// direct-method round trips, no runner) and the baseline (the tutorial
// back-end app's one-device-at-a-time loop, on a sample). It also measures
// the process's CPU time and peak memory, the database's size, and, with a
// hub tier, how much of the tier's allowed rate the run used and how often
// the hub throttled it.
//
// It owns the generated fleet and job files, the topology of the processes,
// the measurements and their rendering as a table, JSON and an SVG chart. It
// leaves the hub to emulator, the devices to simulator, the job to jobs and
// runner, storage to state, and the adapter from the REST client to the
// runner's Hub, like flag parsing, to cmd/hubflow.
package bench
