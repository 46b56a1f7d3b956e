package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what one `hubflow bench` measured. Its JSON field names are
// stable.
type Report struct {
	Machine Machine `json:"machine"`
	// Command is the command line that produced the report.
	Command  string `json:"command,omitempty"`
	Workflow string `json:"workflow"`
	// StageMS is the duration of each simulated device stage.
	StageMS     float64 `json:"stage_ms"`
	Concurrency int     `json:"concurrency"`
	// RolloutRate is the job's rollout rate: new method invocations per
	// second, each of which starts a device execution (retries count too);
	// 0 means none.
	RolloutRate float64 `json:"rollout_rate_per_s,omitempty"`
	Tier        string  `json:"tier,omitempty"`
	Units       int     `json:"units,omitempty"`
	// StepsPerDevice is the workflow's steps: the device executions one
	// device makes, each of them one direct-method call.
	StepsPerDevice int `json:"steps_per_device"`
	// BaselineSample and BaselinePollMS describe the baseline: how many
	// devices it ran on, and how often it read a twin.
	BaselineSample int       `json:"baseline_sample"`
	BaselinePollMS float64   `json:"baseline_poll_ms"`
	Started        time.Time `json:"started"`
	Results        []Result  `json:"results"`
}

// Machine is the computer the report was measured on.
type Machine struct {
	CPU       string `json:"cpu"`
	Cores     int    `json:"cores"`
	Go        string `json:"go"`
	OS        string `json:"os"`
	FileLimit uint64 `json:"file_limit,omitempty"`
}

// Result is one fleet size's figures. A device execution is one device's
// execution of one step of the job, as the run's history records it (one
// row of its executions table, with its own state, attempts and method
// status): a two-step workflow makes two per device. Executions per second
// are the executions that ended divided by the run's wall time (target
// resolution and history writes included); devices per second count the
// devices carried through the whole workflow instead.
type Result struct {
	Devices  int    `json:"devices"`
	Topology string `json:"topology"`
	// TopologyDetail says which process holds what.
	TopologyDetail string `json:"topology_detail"`
	// SetupSeconds is how long starting hub and fleet took (not part of
	// the run).
	SetupSeconds float64 `json:"setup_s"`
	// LoadBefore is the machine's one-minute load average just before the
	// run: other work on the machine shows in every figure.
	LoadBefore float64 `json:"load_before"`

	RunID     string `json:"run_id"`
	RunState  string `json:"run_state"`
	Succeeded int    `json:"succeeded"`
	Failed    int    `json:"failed"`
	TimedOut  int    `json:"timed_out"`
	// Succeeded, Failed and TimedOut count devices (by their last step);
	// Executions counts the device executions that ended succeeded,
	// failed or timed out: devices × steps when every device succeeds.
	Executions  int     `json:"executions"`
	WallSeconds float64 `json:"wall_s"`
	// ExecutionsPerSecond is the runner's throughput end to end, in device
	// executions per second.
	ExecutionsPerSecond float64 `json:"executions_per_s"`
	// DevicesPerSecond is the devices that finished the workflow
	// (succeeded, failed or timed out) per second:
	// ExecutionsPerSecond / StepsPerDevice when every device succeeds.
	DevicesPerSecond float64 `json:"devices_per_s"`
	// MeanExecutionSeconds is the mean time from an execution's first
	// invocation to its end; MeanDeviceSeconds the mean time from a
	// device's first invocation to the end of its last step.
	MeanExecutionSeconds float64 `json:"mean_execution_s"`
	MeanDeviceSeconds    float64 `json:"mean_device_s"`

	Limit Limit `json:"limit"`
	// RunnerToLimit is ExecutionsPerSecond / Limit.ExecutionsPerSecond.
	RunnerToLimit float64 `json:"runner_to_limit"`
	// WorkflowLimit is the job's own workflow with a back end that costs
	// nothing; nil with quotas on.
	WorkflowLimit *WorkflowLimit `json:"workflow_limit,omitempty"`
	// RunnerToWorkflowLimit is ExecutionsPerSecond /
	// WorkflowLimit.ExecutionsPerSecond.
	RunnerToWorkflowLimit float64  `json:"runner_to_workflow_limit,omitempty"`
	Baseline              Baseline `json:"baseline"`
	// HubflowToBaseline is ExecutionsPerSecond /
	// Baseline.ExecutionsPerSecond.
	HubflowToBaseline float64 `json:"hubflow_to_baseline"`

	// CPUSeconds is this process's CPU time (user and system) during the
	// run; CPUScope says what ran in it. CPUSecondsPer1000 is per 1,000
	// device executions.
	CPUSeconds        float64 `json:"cpu_s"`
	CPUSecondsPer1000 float64 `json:"cpu_s_per_1000_executions"`
	CPUScope          string  `json:"cpu_scope"`
	// HubCPUSeconds and DevicesCPUSeconds are the child processes' CPU time
	// during the run (children topology only).
	HubCPUSeconds     float64 `json:"hub_cpu_s,omitempty"`
	DevicesCPUSeconds float64 `json:"devices_cpu_s,omitempty"`
	// OtherCPUSeconds is the CPU time the rest of the machine used during
	// the run (the kernel's work for this benchmark's processes included):
	// anything large means other work competed with the run.
	OtherCPUSeconds float64 `json:"other_cpu_s"`
	// PeakRSSBytes is this process's peak resident memory (VmHWM) while
	// this fleet size was measured, set-up included; the hub's and
	// fleet's are given apart when they run in child processes.
	PeakRSSBytes        int64 `json:"peak_rss_bytes"`
	HubPeakRSSBytes     int64 `json:"hub_peak_rss_bytes,omitempty"`
	DevicesPeakRSSBytes int64 `json:"devices_peak_rss_bytes,omitempty"`
	// DBBytes is the size of the run's SQLite database (it holds this run
	// only); DBBytesPerExecution is per device execution.
	DBBytes             int64   `json:"db_bytes"`
	DBBytesPerExecution float64 `json:"db_bytes_per_execution"`

	// RunnerCalls counts the calls the runner made.
	RunnerCalls Calls `json:"runner_calls"`
	// HubOps counts what the hub did during the run, devices' operations
	// included (hub in this process only).
	HubOps *HubOps `json:"hub_ops,omitempty"`
	// Quota is set when a tier's quotas were on.
	Quota *Quota `json:"quota,omitempty"`
}

// Limit is the most device executions per second the hub and devices
// allow. Without quotas it is measured: Workers callers invoke a method the
// devices do not implement (answered 404 at once by each device's client)
// as fast as answers come, through the same hub, devices and connections
// the runner uses; each execution is one method call, so the round trips
// per second are the executions per second. With quotas it is the tier's
// allowance (see Quota).
type Limit struct {
	Source              string  `json:"source"` // "measured" or "quota"
	RoundTripsPerSecond float64 `json:"round_trips_per_s,omitempty"`
	Workers             int     `json:"workers,omitempty"`
	Seconds             float64 `json:"seconds,omitempty"`
	Errors              int64   `json:"errors,omitempty"`
	ExecutionsPerSecond float64 `json:"executions_per_s"`
}

// WorkflowLimit is what hub and devices sustain for the job's workflow at
// the job's concurrency when the back end costs nothing: Workers callers
// each take the next device, invoke its step's method, learn that the
// device is done from the fleet's own report stream (no twin read, no
// query, no history), and go on to its next step or the next device. It
// runs on the whole fleet after the job, with another firmware version.
// Devices are those carried through every step, Executions the steps
// carried out (devices × steps when none failed).
type WorkflowLimit struct {
	Workers             int     `json:"workers"`
	Devices             int     `json:"devices"`
	Executions          int     `json:"executions"`
	Seconds             float64 `json:"seconds"`
	ExecutionsPerSecond float64 `json:"executions_per_s"`
	DevicesPerSecond    float64 `json:"devices_per_s"`
}

// Baseline is the tutorial back-end app's approach timed on a sample: one
// device at a time, invoke the method, then read the twin every poll
// interval until the device reports it is done, then the next step, then
// the next device. ExecutionsPerSecond counts every step of every sample
// device.
type Baseline struct {
	Devices             int     `json:"devices"`
	PollMS              float64 `json:"poll_ms"`
	SecondsPerDevice    float64 `json:"seconds_per_device"`
	ExecutionsPerSecond float64 `json:"executions_per_s"`
	DevicesPerSecond    float64 `json:"devices_per_s"`
	// FleetSeconds is the time the baseline would take for the whole
	// fleet, extrapolated from the sample.
	FleetSeconds float64 `json:"fleet_s"`
}

// Calls counts a client's calls by kind, the 429 answers among them, and
// how long answers took on average.
type Calls struct {
	Methods        int64   `json:"methods"`
	TwinReads      int64   `json:"twin_reads"`
	QueryPages     int64   `json:"query_pages"`
	DesiredPatches int64   `json:"desired_patches"`
	Throttled      int64   `json:"throttled"`
	MethodMS       float64 `json:"method_mean_ms"`
	TwinReadMS     float64 `json:"twin_read_mean_ms"`
	QueryPageMS    float64 `json:"query_page_mean_ms"`
}

// HubOps counts the hub's metered operations during a run.
type HubOps struct {
	Methods     int64 `json:"methods"`
	TwinReads   int64 `json:"twin_reads"`
	TwinUpdates int64 `json:"twin_updates"`
	Queries     int64 `json:"queries"`
	Throttled   int64 `json:"throttled"`
}

// Quota is how a run used a tier's allowance.
type Quota struct {
	Tier  string `json:"tier"`
	Units int    `json:"units"`
	// MethodRate is the tier's direct-method allowance in calls per second
	// (4 KB units).
	MethodRate float64 `json:"method_rate_per_s"`
	// AllowedExecutionsPerSecond is the device executions per second the
	// tier allows this workflow, AllowedDevicesPerSecond the same in
	// devices through the whole workflow, BoundBy the quota that sets it.
	AllowedExecutionsPerSecond float64 `json:"allowed_executions_per_s"`
	AllowedDevicesPerSecond    float64 `json:"allowed_devices_per_s"`
	BoundBy                    string  `json:"bound_by"`
	// JobRate is the job's rollout rate, in method invocations (executions
	// started) per second: by default one that keeps within a quota the
	// runner does not meter, when one binds first; 0 when the runner's
	// budget alone sets the pace.
	JobRate float64 `json:"job_rate_per_s,omitempty"`
	// MethodsPerSecond is the answered method calls per second the run
	// achieved; MethodShare that over MethodRate, AllowedShare the run's
	// executions per second over AllowedExecutionsPerSecond.
	MethodsPerSecond float64 `json:"methods_per_s"`
	MethodShare      float64 `json:"method_share"`
	AllowedShare     float64 `json:"allowed_share"`
	// Throttled is the number of 429 answers, ThrottledShare their share
	// of the operations ThrottledScope names.
	Throttled      int64   `json:"throttled"`
	ThrottledShare float64 `json:"throttled_share"`
	ThrottledScope string  `json:"throttled_scope"`
}

// WriteJSON writes r as indented JSON.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes r as an aligned table, one row per fleet size, with
// the quota columns when a tier was on, followed by notes that say what
// the columns mean.
func WriteTable(w io.Writer, r *Report) error {
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', tabwriter.AlignRight)
	quota := r.Tier != ""
	head := []string{"devices", "wall", "exec/s", "devices/s", "limit exec/s", "runner/limit", "wf limit exec/s", "runner/wf limit",
		"baseline exec/s", "hubflow/baseline", "CPU s/1k exec", "peak RSS", "DB B/exec"}
	if quota {
		head = append(head, "allowed share", "method share", "429s")
	}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for _, x := range r.Results {
		row := []string{
			fmt.Sprint(x.Devices),
			fmtSeconds(x.WallSeconds),
			fmtRate(x.ExecutionsPerSecond),
			fmtRate(x.DevicesPerSecond),
			fmtRate(x.Limit.ExecutionsPerSecond),
			fmt.Sprintf("%.2f", x.RunnerToLimit),
			"-", "-",
			fmtRate(x.Baseline.ExecutionsPerSecond),
			fmt.Sprintf("%.0f×", x.HubflowToBaseline),
			fmt.Sprintf("%.2f", x.CPUSecondsPer1000),
			fmtBytes(x.PeakRSSBytes),
			fmt.Sprintf("%.0f", x.DBBytesPerExecution),
		}
		if w := x.WorkflowLimit; w != nil {
			row[6], row[7] = fmtRate(w.ExecutionsPerSecond), fmt.Sprintf("%.2f", x.RunnerToWorkflowLimit)
		}
		if quota {
			if q := x.Quota; q != nil {
				row = append(row, pct(q.AllowedShare), pct(q.MethodShare), fmt.Sprintf("%d (%s)", q.Throttled, pct(q.ThrottledShare)))
			} else {
				row = append(row, "-", "-", "-")
			}
		}
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return writeNotes(w, r)
}

// writeNotes explains the table under it.
func writeNotes(w io.Writer, r *Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "\nworkflow %s (%s, each one method call), stages of %s, concurrency %d",
		r.Workflow, plural(r.StepsPerDevice, "device execution", "device executions")+" per device", fmtMS(r.StageMS), r.Concurrency)
	if r.RolloutRate > 0 {
		fmt.Fprintf(&b, ", rollout rate %s executions started/s", fmtRate(r.RolloutRate))
	}
	if r.Tier != "" {
		fmt.Fprintf(&b, ", hub tier %s × %d", r.Tier, r.Units)
	}
	b.WriteString("\n")
	for _, x := range r.Results {
		fmt.Fprintf(&b, "%d devices: %s; run %s (devices: %d succeeded, %d failed, %d timed out; %d executions) in %s after %s of set-up; mean execution %s, mean device through the workflow %s; load average before the run %.2f\n",
			x.Devices, x.TopologyDetail, x.RunState, x.Succeeded, x.Failed, x.TimedOut, x.Executions,
			fmtSeconds(x.WallSeconds), fmtSeconds(x.SetupSeconds), fmtSeconds(x.MeanExecutionSeconds), fmtSeconds(x.MeanDeviceSeconds), x.LoadBefore)
		if x.Limit.Source == "measured" {
			fmt.Fprintf(&b, "  limit: %s method round trips/s with %d callers over %s, one per execution\n",
				fmtRate(x.Limit.RoundTripsPerSecond), x.Limit.Workers, fmtSeconds(x.Limit.Seconds))
		}
		if w := x.WorkflowLimit; w != nil {
			fmt.Fprintf(&b, "  workflow limit: %d devices (%d executions) through the workflow in %s by %d bare callers, completion from the fleet's reports\n",
				w.Devices, w.Executions, fmtSeconds(w.Seconds), w.Workers)
		}
		fmt.Fprintf(&b, "  baseline: %s per device on %d devices (twin read every %s), %s for the fleet\n",
			fmtSeconds(x.Baseline.SecondsPerDevice), x.Baseline.Devices, fmtMS(x.Baseline.PollMS), fmtSeconds(x.Baseline.FleetSeconds))
		fmt.Fprintf(&b, "  CPU: %.2f s in %s", x.CPUSeconds, x.CPUScope)
		if x.HubCPUSeconds > 0 || x.DevicesCPUSeconds > 0 {
			fmt.Fprintf(&b, "; hub %.2f s, fleet %.2f s; peak RSS hub %s, fleet %s",
				x.HubCPUSeconds, x.DevicesCPUSeconds, fmtBytes(x.HubPeakRSSBytes), fmtBytes(x.DevicesPeakRSSBytes))
		}
		fmt.Fprintf(&b, "; rest of the machine %.2f s\n", x.OtherCPUSeconds)
		c := x.RunnerCalls
		fmt.Fprintf(&b, "  runner calls: %d methods (mean %s), %d twin reads (mean %s), %d query pages (mean %s), %d throttled; database %s\n",
			c.Methods, fmtMS(c.MethodMS), c.TwinReads, fmtMS(c.TwinReadMS), c.QueryPages, fmtMS(c.QueryPageMS), c.Throttled, fmtBytes(x.DBBytes))
		if q := x.Quota; q != nil {
			fmt.Fprintf(&b, "  quota: %s × %d allows %s exec/s = %s devices/s (bound by %s); run reached %s of it",
				q.Tier, q.Units, fmtRate(q.AllowedExecutionsPerSecond), fmtRate(q.AllowedDevicesPerSecond), q.BoundBy, pct(q.AllowedShare))
			if q.JobRate > 0 {
				fmt.Fprintf(&b, " with the job's rate set to %s executions started/s", fmtRate(q.JobRate))
			} else {
				b.WriteString(" with no job rate (the runner's budget alone)")
			}
			fmt.Fprintf(&b, "; %s method calls/s = %s of the %s/s method quota; %d throttled answers (%s of %s)\n",
				fmtRate(q.MethodsPerSecond), pct(q.MethodShare), fmtRate(q.MethodRate), q.Throttled, pct(q.ThrottledShare), q.ThrottledScope)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func fmtSeconds(s float64) string {
	switch {
	case s == 0:
		return "0s"
	case s < 1:
		return fmt.Sprintf("%.0fms", s*1000)
	case s < 100:
		return fmt.Sprintf("%.2fs", s)
	case s < 3600:
		return fmt.Sprintf("%.0fs", s)
	}
	return fmt.Sprintf("%.1fh", s/3600)
}

func fmtMS(v float64) string { return fmtSeconds(v / 1000) }

func fmtRate(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 10:
		return fmt.Sprintf("%.2f", v)
	case v < 100:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

func fmtBytes(n int64) string {
	switch {
	case n <= 0:
		return "-"
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
}

// plural spells n with the noun's singular or plural.
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func pct(f float64) string { return fmt.Sprintf("%.1f%%", f*100) }
