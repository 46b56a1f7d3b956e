// Package hubflow is the root of the hubflow module. It holds no code: the
// command lives in cmd/hubflow and the packages it wires together live
// beside it (jobs, runner, state, iothub, emulator, simulator). The tests in
// this directory enforce project-wide rules: one package comment per
// package, gofmt, go vet and staticcheck.
package hubflow
