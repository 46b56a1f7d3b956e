package reliability_test

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hubflow/hubflow/emulator"
	"github.com/hubflow/hubflow/simulator"
	"github.com/hubflow/hubflow/state"
)

// deviceTruth is what one device did, as the hub saw it: the method calls
// written to it and the reported properties it sent.
type deviceTruth struct {
	// updates and reboots are the calls of each method delivered to the
	// device, oldest first.
	updates, reboots []emulator.Invocation
	// completed and failed are when the hub received the device's first
	// firmwareStatus "completed" (with fwVersion 2.1.0) or "failed".
	completed, failed time.Time
	// rebooted is when the hub received the first rebootTime reported after
	// the first rebootDevice call reached the device.
	rebooted time.Time
	// nCompleted and nRebooted count the firmware updates completed and
	// the reboots the hub was told of (by their times: a patch sent again
	// is counted once).
	nCompleted, nRebooted int
}

// hubLog is the witness: a hub's logs of method calls and reported
// patches.
type hubLog interface {
	Invocations() []emulator.Invocation
	ReportedLog(id string) []emulator.ReportedPatch
}

// hubLogs joins the logs of the hubs that served one run in turn (an
// emulator and the same emulator restarted).
type hubLogs []hubLog

func (hs hubLogs) Invocations() []emulator.Invocation {
	var out []emulator.Invocation
	for _, h := range hs {
		out = append(out, h.Invocations()...)
	}
	return out
}

func (hs hubLogs) ReportedLog(id string) []emulator.ReportedPatch {
	var out []emulator.ReportedPatch
	for _, h := range hs {
		out = append(out, h.ReportedLog(id)...)
	}
	return out
}

// witness reads what every device of ids did from the hub's logs.
func witness(h hubLog, ids []string) map[string]*deviceTruth {
	out := make(map[string]*deviceTruth, len(ids))
	for _, id := range ids {
		out[id] = &deviceTruth{}
	}
	for _, inv := range h.Invocations() {
		d, ok := out[inv.DeviceID]
		if !ok || inv.Sent.IsZero() {
			continue
		}
		switch inv.Method {
		case simulator.MethodFirmwareUpdate:
			d.updates = append(d.updates, inv)
		case simulator.MethodReboot:
			d.reboots = append(d.reboots, inv)
		}
	}
	for id, d := range out {
		// A patch whose acknowledgement the device never got (the hub went
		// away just after applying it) is sent again as it was: the same
		// reboot or update, told twice. A second one carries its own time.
		reboots, completions := map[string]bool{}, map[string]bool{}
		for _, p := range h.ReportedLog(id) {
			var patch map[string]any
			if json.Unmarshal(p.Patch, &patch) != nil {
				continue
			}
			if at, ok := patch["rebootTime"]; ok {
				if key := fmt.Sprint(at); !reboots[key] {
					reboots[key] = true
					d.nRebooted++
				}
				if d.rebooted.IsZero() && len(d.reboots) > 0 && p.Received.After(d.reboots[0].Sent) {
					d.rebooted = p.Received
				}
			}
			switch patch["firmwareStatus"] {
			case simulator.StatusCompleted:
				if key := fmt.Sprint(patch["lastFirmwareUpdate"]); !completions[key] {
					completions[key] = true
					d.nCompleted++
				}
				if d.completed.IsZero() && patch["fwVersion"] == "2.1.0" {
					d.completed = p.Received
				}
			case simulator.StatusFailed:
				if d.failed.IsZero() {
					d.failed = p.Received
				}
			}
		}
	}
	return out
}

// witnessReport sums up a comparison of a two-step run's record with the
// witness.
type witnessReport struct {
	devices             int
	succeeded, failed   int
	updateCalls         int // firmwareUpdate calls delivered
	rebootCalls         int // rebootDevice calls delivered
	invokedTwice        int // device steps delivered more than once
	mismatches          int // devices whose record disagrees with the witness
	afterDone           int // calls delivered after the device had done the step
	late                int // steps the device did after they timed out, or unseen in an outage
	doneTwice           int // device steps the device carried out more than once
	attemptsUnderstated int // device steps with more deliveries than recorded attempts
	// known lists the cases of the runner faults the witness classifies
	// (issue); knownDevices are the devices they concern.
	known        map[issue][]string
	knownDevices map[string]bool
}

func (r witnessReport) String() string {
	n := 0
	for _, cases := range r.known {
		n += len(cases)
	}
	return fmt.Sprintf("%d devices (%d succeeded, %d did not), %d firmwareUpdate and %d rebootDevice calls delivered, "+
		"%d device steps delivered more than once and %d carried out twice, %d done by the device after they timed out (or unseen in an outage); "+
		"%d mismatches, %d calls delivered after the device had done the step, %d steps with unrecorded attempts, %d cases of classified runner faults",
		r.devices, r.succeeded, r.failed, r.updateCalls, r.rebootCalls, r.invokedTwice, r.doneTwice, r.late,
		r.mismatches, r.afterDone, r.attemptsUnderstated, n)
}

// issue is a class of runner fault the witness tells apart from a plain
// mismatch, because each was once found here: its cases fail the test with
// a description of the fault.
type issue int

const (
	// issueRetryWithoutTwin: after an attempt whose outcome was unknown
	// (a crash, a lost answer, "device not online" from a device that
	// dropped its connection after the call reached it), the step was sent
	// again before the twin showed that the call had not reached the
	// device.
	issueRetryWithoutTwin issue = iota + 1
	// issueInvokeAfterTimeout: a step was invoked after its timeout had
	// passed (on the way through reconcile, after an outage).
	issueInvokeAfterTimeout
)

func (i issue) String() string {
	switch i {
	case issueRetryWithoutTwin:
		return "the runner sent a step again although the call before it had reached the device " +
			"(the device did the step twice, or answered 409 and the step was recorded failed although the device completed it)"
	case issueInvokeAfterTimeout:
		return "a step was invoked after its timeout had passed, " +
			"then recorded timed_out while the device carried it out"
	}
	return fmt.Sprintf("issue %d", int(i))
}

// witnessOptions tune compareWithWitness.
type witnessOptions struct {
	// stepTimeout is each step's timeout; 0 skips the check that no call
	// is sent after it.
	stepTimeout time.Duration
	// blindFrom and blindUntil bound a hub outage, during which the runner
	// could not read twins: a step whose timeout passed then may be
	// recorded timed_out although the device did it.
	blindFrom, blindUntil time.Time
}

// compareWithWitness checks the record of a finished two-step run (update
// then reboot) against what every device did:
//   - no call of a step reached a device after the device had done it (the
//     firmware completed or failed, or it rebooted), after the runner
//     recorded the step's success, or after the step's timeout;
//   - the reboot was never sent before the firmware completed;
//   - each device's recorded outcome is what the device did: update
//     succeeded if and only if the firmware completed (or timed out before
//     it did), failed if the firmware failed, reboot succeeded if and only
//     if the device rebooted (or timed out before it did), skipped and
//     never sent after a failed update; a step that failed without the
//     device failing it says why;
//   - every delivered call was recorded as an attempt first.
//
// Cases of classified faults are returned in the report; failOnIssues fails them.
func compareWithWitness(tb testing.TB, h hubLog, db string, xs map[string]state.Execution, ids []string, o witnessOptions) witnessReport {
	tb.Helper()
	truth := witness(h, ids)
	rep := witnessReport{devices: len(ids), known: map[issue][]string{}, knownDevices: map[string]bool{}}
	var problems []string
	problem := func(format string, args ...any) {
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	known := func(i issue, id, format string, args ...any) {
		rep.known[i] = append(rep.known[i], fmt.Sprintf(format, args...))
		rep.knownDevices[id] = true
	}
	// Recorded times have millisecond precision.
	const slack = 5 * time.Millisecond
	for _, id := range ids {
		d := truth[id]
		up, rb := xs[id+"/update"], xs[id+"/reboot"]
		rep.updateCalls += len(d.updates)
		rep.rebootCalls += len(d.reboots)
		bad := len(problems)

		// calls checks the deliveries of one step against what the device
		// did (done: completed or rebooted) and the step's record x.
		calls := func(method string, invs []emulator.Invocation, done time.Time, what string, x state.Execution) {
			for _, inv := range invs {
				switch {
				case x.State == state.ExecSucceeded && inv.Sent.After(x.EndedAt.Add(slack)):
					problem("%s: %s delivered at %s, after the step was recorded succeeded at %s", id, method, ts(inv.Sent), ts(x.EndedAt))
					rep.afterDone++
				case !done.IsZero() && inv.Sent.After(done):
					known(issueRetryWithoutTwin, id, "%s: %s delivered at %s, after the device %s at %s", id, method, ts(inv.Sent), what, ts(done))
					rep.afterDone++
				}
				if o.stepTimeout > 0 && !x.StartedAt.IsZero() && inv.Sent.After(x.StartedAt.Add(o.stepTimeout+slack)) {
					known(issueInvokeAfterTimeout, id, "%s: %s delivered at %s, after the step's timeout (started %s, timeout %s)",
						id, method, ts(inv.Sent), ts(x.StartedAt), o.stepTimeout)
				}
			}
			if len(invs) > 1 {
				rep.invokedTwice++
			}
			if len(invs) > x.Attempt {
				problem("%s/%s: %d calls delivered, %d attempts recorded", id, x.Step, len(invs), x.Attempt)
				rep.attemptsUnderstated++
			}
		}
		calls(simulator.MethodFirmwareUpdate, d.updates, d.completed, "completed the firmware update", up)
		calls(simulator.MethodReboot, d.reboots, d.rebooted, "rebooted", rb)
		for _, inv := range d.updates {
			if !d.failed.IsZero() && inv.Sent.After(d.failed) {
				problem("%s: firmwareUpdate delivered at %s, after the firmware failed at %s", id, ts(inv.Sent), ts(d.failed))
			}
		}
		for _, inv := range d.reboots {
			if d.completed.IsZero() || inv.Sent.Before(d.completed) {
				problem("%s: rebootDevice delivered at %s before the firmware completed (%s)", id, ts(inv.Sent), ts(d.completed))
			}
		}

		// outcome checks a step's record against whether the device did it.
		outcome := func(x state.Execution, done time.Time, what string) {
			switch {
			case done.IsZero():
				if x.State == state.ExecSucceeded {
					problem("%s: %s is recorded succeeded, but the device never %s", id, x.Step, what)
				}
			case x.State == state.ExecSucceeded:
			case x.State == state.ExecTimedOut && done.After(x.EndedAt.Add(-slack)):
				rep.late++
			case x.State == state.ExecTimedOut && o.stepTimeout > 0 && !o.blindFrom.IsZero() &&
				x.StartedAt.Add(o.stepTimeout).After(o.blindFrom) && x.StartedAt.Add(o.stepTimeout).Before(o.blindUntil):
				// The timeout passed while the hub could not be read.
				rep.late++
			case x.State == state.ExecTimedOut && len(rep.known[issueInvokeAfterTimeout]) > 0 && rep.knownDevices[id]:
				known(issueInvokeAfterTimeout, id, "%s: the device %s at %s, but %s, invoked after its timeout, is recorded timed_out at %s",
					id, what, ts(done), x.Step, ts(x.EndedAt))
			case x.State == state.ExecFailed && strings.Contains(x.Error, "status 409") && len(d.updates) > 1:
				known(issueRetryWithoutTwin, id, "%s: the device %s at %s, but %s is recorded failed (%s)", id, what, ts(done), x.Step, x.Error)
			default:
				problem("%s: the device %s at %s, but %s is recorded %s (%s)", id, what, ts(done), x.Step, x.State, x.Error)
			}
			if x.State.Finished() && x.State != state.ExecSucceeded && x.Error == "" {
				problem("%s: %s is recorded %s without a reason", id, x.Step, x.State)
			}
		}
		if !d.failed.IsZero() && d.completed.IsZero() {
			if up.State != state.ExecFailed {
				problem("%s: the firmware failed at %s, but the update is recorded %s", id, ts(d.failed), up.State)
			}
		} else {
			outcome(up, d.completed, "completed the firmware update")
		}
		if up.State == state.ExecSucceeded {
			outcome(rb, d.rebooted, "rebooted")
		} else if rb.State != state.ExecSkipped || len(d.reboots) > 0 {
			problem("%s: the update did not succeed, but the reboot is recorded %s with %d calls delivered", id, rb.State, len(d.reboots))
		}

		if d.nCompleted > 1 {
			rep.doneTwice++
			known(issueRetryWithoutTwin, id, "%s: the device completed the firmware update %d times", id, d.nCompleted)
		}
		if d.nRebooted > 1 {
			rep.doneTwice++
			known(issueRetryWithoutTwin, id, "%s: the device rebooted %d times", id, d.nRebooted)
		}
		if up.State == state.ExecSucceeded && rb.State == state.ExecSucceeded {
			rep.succeeded++
		} else {
			rep.failed++
		}
		if len(problems) > bad {
			rep.mismatches++
			if rep.mismatches <= 3 {
				logTimeline(tb, h, db, id)
			}
		}
	}
	sort.Strings(problems)
	const show = 30
	for i, p := range problems {
		if i == show {
			tb.Errorf("… and %d more", len(problems)-show)
			break
		}
		tb.Error(p)
	}
	return rep
}

func ts(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("15:04:05.000000")
}

// invocationOutcomes counts the hub's method calls per outcome, for logs.
func invocationOutcomes(h hubLog) string {
	n := map[emulator.Outcome]int{}
	for _, inv := range h.Invocations() {
		n[inv.Outcome]++
	}
	var parts []string
	for o, c := range n {
		parts = append(parts, fmt.Sprintf("%s=%d", o, c))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// logTimeline logs what the record and the witness say of one device, to
// explain a mismatch.
func logTimeline(tb testing.TB, h hubLog, db, id string) {
	tb.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "timeline of %s:\n", id)
	evs := readEvents(tb, db)
	var list []event
	for _, e := range evs {
		if e.Device == id {
			list = append(list, e)
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	for _, e := range list {
		fmt.Fprintf(&b, "  record  %s  %s %s %s attempt=%d progress=%s error=%q %s\n", ts(time.UnixMilli(e.Observed)), e.Step, e.Kind, e.State, e.Attempt, e.Progress, e.Error, e.Detail)
	}
	for _, inv := range h.Invocations() {
		if inv.DeviceID == id {
			fmt.Fprintf(&b, "  hub     %s  %s sent, %s %d at %s\n", ts(inv.Sent), inv.Method, inv.Outcome, inv.Status, ts(inv.Answered))
		}
	}
	for _, p := range h.ReportedLog(id) {
		fmt.Fprintf(&b, "  device  %s  reported %s\n", ts(p.Received), p.Patch)
	}
	tb.Log(b.String())
}

// failOnIssues logs the cases of the runner faults the witness looks for
// and fails the test with them.
func failOnIssues(t *testing.T, rep witnessReport) {
	t.Helper()
	if len(rep.known) == 0 {
		return
	}
	var why []string
	for i := issueRetryWithoutTwin; i <= issueInvokeAfterTimeout; i++ {
		cases := rep.known[i]
		if len(cases) == 0 {
			continue
		}
		for j, msg := range cases {
			if j == 10 {
				t.Logf("… and %d more", len(cases)-j)
				break
			}
			t.Log(msg)
		}
		why = append(why, fmt.Sprintf("%s: %d cases", i, len(cases)))
	}
	t.Error(strings.Join(why, "; "))
}
