//go:build !linux

package bench

import (
	"errors"
	"os/exec"
	"time"
)

var errUnsupported = errors.New("not supported on this system")

// RaiseFileLimit does nothing outside Linux and returns 0 (unknown).
func RaiseFileLimit() (uint64, error) { return 0, nil }

func fileLimit() uint64 { return 0 }

func processCPU() time.Duration { return 0 }

func childCPU(int) (time.Duration, error) { return 0, errUnsupported }

func peakRSS(int) (int64, error) { return 0, errUnsupported }

func resetPeakRSS() error { return errUnsupported }

func cpuModel() string { return "" }

func dieWithParent(*exec.Cmd) {}

func loadAverage() float64 { return 0 }

func machineBusy() (time.Duration, error) { return 0, errUnsupported }
