// Package examples carries the example files hubflow itself needs at run
// time, built into the binary so that they are there whatever the working
// directory: today the simulated fleet of examples/fleet.hcl, which the
// embedded emulator falls back on.
//
// The files stay ordinary files of this folder for people to read and
// copy; loading and checking them is left to the simulator, and choosing
// between them and the operator's own files to cmd/hubflow.
package examples
