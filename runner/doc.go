// Package runner carries out runs of hubflow jobs: it resolves a job's
// target devices, starts them as the rollout allows (concurrency, rate,
// canary wave, abort rule) inside the job's maintenance windows, invokes
// each device's steps (a direct method or a desired-property patch),
// follows each device's progress through its twin until the step's success
// or failure condition holds or its timeout passes, and records every state
// change in the run history before the action it allows, so that a run
// resumed after a crash never invokes a step that succeeded and reconciles
// an interrupted invocation from the twin before sending it again.
//
// Every hub call waits on a Budget, the quota budget of one hub (its tier
// and units) shared by all runs of a process; throttled answers slow the
// budget down rather than fail devices. An observer spends the twin-read
// budget on the devices whose next change is most likely due. Plan works out
// what a run would do, and the plan hash that Run can be held to.
//
// The runner declares what it needs of its neighbours: Hub (implemented
// over iothub/service by cmd/hubflow), Recorder (implemented by
// *state.Store) and Clock. Decoding job files and evaluating their
// expressions belong to jobs, storage to state, rendering to cmd/hubflow.
// Creating runs on a schedule (hubflow serve) builds on Runner.Run and
// Runner.Resume with a shared Budget.
package runner
