package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hubflow/hubflow/bench"
)

// benchChildEnv, when set, makes the test binary act as hubflow itself, so
// that `hubflow bench -topology children` can start it as its emulator and
// fleet processes.
const benchChildEnv = "HUBFLOW_TEST_AS_HUBFLOW"

func TestMain(m *testing.M) {
	if os.Getenv(benchChildEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		a := &app{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, env: os.Environ()}
		code := a.main(ctx, os.Args[1:])
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// runBench runs the bench command in-process and returns its exit code and
// streams.
func runBench(t testing.TB, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, logger: slog.New(slog.DiscardHandler)}
	cmd := a.benchCommand()
	cmd.FlagSet.SetOutput(&errb)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	err := cmd.ParseAndRun(ctx, args)
	if err == nil {
		return exitOK, out.String(), errb.String()
	}
	var se silentExit
	if !errors.As(err, &se) {
		errb.WriteString("hubflow: " + err.Error() + "\n")
	}
	return exitCodeOf(err), out.String(), errb.String()
}

func TestBench_BadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"argument", []string{"extra"}, "bench takes no arguments"},
		{"devices", []string{"-devices", "10,many"}, `"many" is not a number of devices`},
		{"no devices", []string{"-devices", ","}, "no fleet size"},
		{"output", []string{"-o", "yaml"}, `-o "yaml": want table or json`},
		{"stage", []string{"-stage", "-1s"}, "want a positive duration"},
		{"ca without hub", []string{"-ca", "ca.pem"}, "-ca and -gateway go with -hub"},
		{"device connection string", []string{"-hub", "HostName=h;DeviceId=d;SharedAccessKey=a2V5"}, "device's connection string"},
		{"workflow", []string{"-workflow", "dance", "-devices", "1"}, `unknown workflow "dance"`},
		{"tier", []string{"-tier", "B1", "-devices", "1"}, "B1"},
		{"rate", []string{"-rate", "fast"}, `-rate: "fast" is not a rate`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runBench(t, tc.args...)
			if code != exitBadInput || !strings.Contains(stderr, tc.want) {
				t.Errorf("got exit %d and %q, want exit %d mentioning %q", code, stderr, exitBadInput, tc.want)
			}
		})
	}
}

func TestParseBenchRate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
	}{{"auto", 0}, {"", 0}, {"none", -1}, {"30/s", 30}, {"600/m", 10}} {
		got, err := parseBenchRate(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("%q: got %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestBenchCommandLine(t *testing.T) {
	a := &app{}
	cmd := a.benchCommand()
	err := cmd.FlagSet.Parse([]string{"-hub", "HostName=h;SharedAccessKeyName=o;SharedAccessKey=c2VjcmV0",
		"-chart", "c.svg", "-workflow", "reboot", "-devices", "10,20"})
	if err != nil {
		t.Fatal(err)
	}
	got := benchCommandLine(cmd.FlagSet)
	if want := "hubflow bench -devices 10,20 -workflow reboot -chart c.svg -hub CS"; got != want {
		t.Errorf("got %q, want %q (no key)", got, want)
	}
}

// TestBench_Smoke runs a small benchmark in each topology and checks that
// the JSON parses, the figures are sane and the chart is written; it asserts
// nothing about speed.
func TestBench_Smoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts hubs and fleets")
	}
	t.Setenv(benchChildEnv, "1")
	for _, topology := range []string{bench.TopologyInProcess, bench.TopologyChildren} {
		t.Run(topology, func(t *testing.T) {
			chart := filepath.Join(t.TempDir(), "bench.svg")
			code, stdout, stderr := runBench(t, "-devices", "20", "-stage", "20ms", "-workflow", "firmware",
				"-concurrency", "16", "-sample", "2", "-limit-duration", "300ms", "-topology", topology,
				"-o", "json", "-chart", chart, "-dir", t.TempDir())
			if code != exitOK {
				t.Fatalf("exit %d:\n%s", code, stderr)
			}
			var rep bench.Report
			if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
				t.Fatalf("output is not the JSON report: %v\n%s", err, stdout)
			}
			if len(rep.Results) != 1 {
				t.Fatalf("got %d results, want 1", len(rep.Results))
			}
			x := rep.Results[0]
			if x.Topology != topology || x.Succeeded != 20 {
				t.Errorf("got topology %s with %d succeeded, want %s with 20", x.Topology, x.Succeeded, topology)
			}
			// One step: one execution per device, so devices/s is exec/s.
			if rep.StepsPerDevice != 1 || x.Executions != 20 || x.DevicesPerSecond != x.ExecutionsPerSecond {
				t.Errorf("got %d steps per device, %d executions, %v devices/s and %v exec/s; want 1, 20 and the two rates equal",
					rep.StepsPerDevice, x.Executions, x.DevicesPerSecond, x.ExecutionsPerSecond)
			}
			if x.Limit.ExecutionsPerSecond != x.Limit.RoundTripsPerSecond {
				t.Errorf("limit: got %v exec/s, want the %v round trips/s", x.Limit.ExecutionsPerSecond, x.Limit.RoundTripsPerSecond)
			}
			if !(x.ExecutionsPerSecond > 0 && x.Limit.ExecutionsPerSecond >= x.ExecutionsPerSecond && x.Baseline.ExecutionsPerSecond > 0) {
				t.Errorf("got %.1f exec/s, limit %.1f, baseline %.2f; want all positive and the limit at least the runner's",
					x.ExecutionsPerSecond, x.Limit.ExecutionsPerSecond, x.Baseline.ExecutionsPerSecond)
			}
			if x.WorkflowLimit == nil || x.WorkflowLimit.Executions != 20 || x.WorkflowLimit.Devices != 20 {
				t.Errorf("workflow limit: got %+v, want 20 devices and 20 executions", x.WorkflowLimit)
			}
			if topology == bench.TopologyChildren && !(x.HubCPUSeconds > 0 && x.DevicesPeakRSSBytes > 0) {
				t.Errorf("children: got hub CPU %.3f s and fleet peak RSS %d, want both measured", x.HubCPUSeconds, x.DevicesPeakRSSBytes)
			}
			if !strings.HasPrefix(rep.Command, "hubflow bench -devices 20") {
				t.Errorf("command: got %q", rep.Command)
			}
			svg, err := os.ReadFile(chart)
			if err != nil {
				t.Fatal(err)
			}
			dec := xml.NewDecoder(bytes.NewReader(svg))
			for {
				if _, err := dec.Token(); err == io.EOF {
					break
				} else if err != nil {
					t.Fatalf("chart is not well-formed: %v", err)
				}
			}
		})
	}
}
