package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/jobs"
)

// TargetDevice is one device of a resolved target set.
type TargetDevice struct {
	ID string
	// Twin is the device's twin as the resolving query returned it; nil
	// for a device that does not exist.
	Twin *iothub.Twin
	// SkipReason, when set, says why the device is not run: it does not
	// exist, or its time zone for a device-local window is missing or
	// invalid.
	SkipReason string
}

// Skip reasons recorded for devices.
const (
	reasonNotFound = "device not found in the hub"
)

// queryRetries bounds how often one query page is tried again after a
// throttled or transient answer before target resolution gives up.
const queryRetries = 6

// resolve returns the job's target devices sorted by id: the devices the
// query matches, or the listed ids (with those the hub does not know marked
// skipped). Listed ids are read with `deviceId IN [...]` queries kept under
// the hub's query-length limit.
func (r *Runner) resolve(ctx context.Context, job *jobs.Job) ([]TargetDevice, error) {
	if job.Target.Query != "" {
		twins, err := r.queryAll(ctx, "SELECT * FROM devices WHERE "+job.Target.Query)
		if err != nil {
			return nil, fmt.Errorf("resolve target of job %s: %w", job.Name, err)
		}
		out := make([]TargetDevice, 0, len(twins))
		for _, t := range twins {
			out = append(out, TargetDevice{ID: t.DeviceID, Twin: t})
		}
		return out, nil
	}
	twins, err := r.readTwins(ctx, job.Target.Devices)
	if err != nil {
		return nil, fmt.Errorf("resolve target of job %s: %w", job.Name, err)
	}
	ids := slices.Clone(job.Target.Devices)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	out := make([]TargetDevice, 0, len(ids))
	for _, id := range ids {
		if t := twins[id]; t != nil {
			out = append(out, TargetDevice{ID: id, Twin: t})
		} else {
			out = append(out, TargetDevice{ID: id, SkipReason: reasonNotFound})
		}
	}
	return out, nil
}

// readTwins reads the twins of ids with batched queries; ids the hub does
// not know are absent from the result.
func (r *Runner) readTwins(ctx context.Context, ids []string) (map[string]*iothub.Twin, error) {
	out := make(map[string]*iothub.Twin, len(ids))
	for _, q := range idQueries(ids) {
		twins, err := r.queryAll(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, t := range twins {
			out[t.DeviceID] = t
		}
	}
	return out, nil
}

// idQueries splits ids into `SELECT * FROM devices WHERE deviceId IN [...]`
// queries, each within the hub's query-length limit.
func idQueries(ids []string) []string {
	var out []string
	var b strings.Builder
	n := 0
	flush := func() {
		if n > 0 {
			b.WriteByte(']')
			out = append(out, b.String())
		}
		b.Reset()
		n = 0
	}
	for _, id := range ids {
		q := jobs.QuoteString(id)
		if n > 0 && b.Len()+1+len(q)+1 > iothub.MaxQueryLength {
			flush()
		}
		if n == 0 {
			b.WriteString(batchQueryPrefix)
			b.WriteByte('[')
		} else {
			b.WriteByte(',')
		}
		b.WriteString(q)
		n++
	}
	flush()
	return out
}

// queryAll runs a query to its last page, spending the query budget on
// each page. A throttled page slows the budget down and is asked again; so
// is one the hub failed transiently, a few times.
func (r *Runner) queryAll(ctx context.Context, query string) ([]*iothub.Twin, error) {
	seen := map[string]bool{}
	var out []*iothub.Twin
	pages := r.hub.QueryTwins(ctx, query)
	for pages.More() {
		var twins []*iothub.Twin
		for try := 0; ; try++ {
			if err := r.budget.Wait(ctx, OpQuery, 1); err != nil {
				return nil, err
			}
			var err error
			twins, err = pages.Next(ctx)
			if err == nil {
				break
			}
			kind := iothub.KindOf(err)
			if kind == iothub.KindThrottled {
				r.budget.Throttled(OpQuery, iothub.RetryAfterOf(err))
			}
			if (kind != iothub.KindThrottled && kind != iothub.KindTransient) || try >= queryRetries {
				return nil, err
			}
			if err := sleepReal(ctx, backoffDelay(time.Second, try, 0.5)); err != nil {
				return nil, err
			}
		}
		for _, t := range twins {
			if t == nil || t.DeviceID == "" || seen[t.DeviceID] {
				continue
			}
			seen[t.DeviceID] = true
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b *iothub.Twin) int { return strings.Compare(a.DeviceID, b.DeviceID) })
	return out, nil
}

// PlanHash is the hash `hubflow plan` prints and `hubflow run -plan-hash`
// checks: the job's normalized content and variables (jobs.Job.Hash) and the
// resolved device set, skipped devices and their reasons included.
func PlanHash(job *jobs.Job, targets []TargetDevice) string {
	h := sha256.New()
	fmt.Fprintf(h, "hubflow plan v1\njob %s\n", job.Hash())
	for _, t := range targets {
		fmt.Fprintf(h, "%q %q\n", t.ID, t.SkipReason)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
