package emulator

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hubflow/hubflow/iothub"
)

func TestTwin_PatchMergeVersionsAndMetadata(t *testing.T) {
	h := startHub(t, Options{})
	h.mustCreate(t, "d1")
	c := h.rest(t, PolicyService)
	t0 := h.clock.Now()

	tw := c.do("GET", "/twins/d1", nil).json(t)
	if tw["deviceId"] != "d1" || tw["version"] != 1.0 || path(tw, "properties", "desired", "$version") != 1.0 || path(tw, "properties", "reported", "$version") != 1.0 {
		t.Fatalf("new twin: got %v", tw)
	}
	etag0 := tw["etag"].(string)

	h.clock.Advance(time.Second)
	t1 := h.clock.Now()
	r := c.do("PATCH", "/twins/d1", `{"tags":{"site":"north","ring":{"n":1}},"properties":{"desired":{"fw":{"version":"2.1","url":"u"},"list":[1,2,3],"keep":true}}}`)
	wantStatus(t, r, http.StatusOK)
	tw = r.json(t)
	if tw["version"] != 2.0 || path(tw, "properties", "desired", "$version") != 2.0 || tw["etag"] == etag0 {
		t.Fatalf("after first patch: version %v desired $version %v etag %v", tw["version"], path(tw, "properties", "desired", "$version"), tw["etag"])
	}
	if r.header.Get("ETag") != `"`+tw["etag"].(string)+`"` {
		t.Fatalf("got ETag header %q, want the twin etag quoted", r.header.Get("ETag"))
	}

	h.clock.Advance(time.Second)
	t2 := h.clock.Now()
	// Nested merge, null deletes, arrays replaced whole; If-Match with the
	// quoted etag.
	r = c.do("PATCH", "/twins/d1", `{"tags":{"ring":null},"properties":{"desired":{"fw":{"version":"2.2","url":null},"list":[9]}}}`,
		"If-Match", `"`+tw["etag"].(string)+`"`)
	wantStatus(t, r, http.StatusOK)
	tw = r.json(t)
	want := `{"fw":{"version":"2.2"},"keep":true,"list":[9]}`
	desired := path(tw, "properties", "desired").(map[string]any)
	values := map[string]any{}
	for k, v := range desired {
		if !strings.HasPrefix(k, "$") {
			values[k] = v
		}
	}
	if got := mustJSON(t, values); got != want {
		t.Fatalf("got desired %s, want %s", got, want)
	}
	if got := mustJSON(t, tw["tags"]); got != `{"site":"north"}` {
		t.Fatalf("got tags %s, want {\"site\":\"north\"}", got)
	}
	md := path(tw, "properties", "desired", "$metadata").(map[string]any)
	checks := []struct {
		keys []string
		want any
	}{
		{[]string{"$lastUpdated"}, iothub.FormatTime(t2)},
		{[]string{"$lastUpdatedVersion"}, 3.0},
		{[]string{"fw", "$lastUpdated"}, iothub.FormatTime(t2)},
		{[]string{"fw", "version", "$lastUpdatedVersion"}, 3.0},
		{[]string{"keep", "$lastUpdated"}, iothub.FormatTime(t1)},
		{[]string{"keep", "$lastUpdatedVersion"}, 2.0},
		{[]string{"fw", "url"}, nil},
	}
	for _, ck := range checks {
		if got := path(md, ck.keys...); got != ck.want {
			t.Errorf("$metadata.%s: got %v, want %v", strings.Join(ck.keys, "."), got, ck.want)
		}
	}
	if path(tw, "properties", "reported", "$metadata", "$lastUpdated") != iothub.FormatTime(t0) {
		t.Errorf("reported $metadata: got %v, want the creation time", path(tw, "properties", "reported", "$metadata"))
	}
	if _, ok := path(tw, "properties", "reported", "$metadata").(map[string]any)["$lastUpdatedVersion"]; ok {
		t.Error("reported $metadata has $lastUpdatedVersion; only desired has it")
	}

	// A tags-only patch bumps the twin version, not desired $version.
	tw = c.do("PATCH", "/twins/d1", `{"tags":{"x":1}}`, "If-Match", "*").json(t)
	if tw["version"] != 4.0 || path(tw, "properties", "desired", "$version") != 3.0 {
		t.Fatalf("tags patch: got version %v desired %v, want 4 and 3", tw["version"], path(tw, "properties", "desired", "$version"))
	}
	etag := tw["etag"].(string)
	for _, im := range []string{"*", `"*"`, etag, `"` + etag + `"`} {
		r := c.do("PATCH", "/twins/d1", `{}`, "If-Match", im)
		wantStatus(t, r, http.StatusOK)
	}
	wantError(t, c.do("PATCH", "/twins/d1", `{"tags":{"y":1}}`, "If-Match", `"AAAAAAAAAAE="`), http.StatusPreconditionFailed, iothub.CodePreconditionFailed)
	wantError(t, c.do("PATCH", "/twins/ghost", `{"tags":{"y":1}}`), http.StatusNotFound, iothub.CodeDeviceNotFound)
}

func TestTwin_RejectsBadUpdates(t *testing.T) {
	h := startHub(t, Options{})
	h.mustCreate(t, "d1")
	c := h.rest(t, PolicyService)
	deep := `{"properties":{"desired":` + strings.Repeat(`{"a":`, 11) + `1` + strings.Repeat(`}`, 11) + `}}`
	tests := []struct {
		name, body string
		code       int
	}{
		{"reported from the service", `{"properties":{"reported":{"x":1}}}`, iothub.CodeArgumentInvalid},
		{"key with a dot", `{"properties":{"desired":{"a.b":1}}}`, iothub.CodeArgumentInvalid},
		{"key with $", `{"tags":{"$x":1}}`, iothub.CodeArgumentInvalid},
		{"key with a space", `{"tags":{"a b":1}}`, iothub.CodeArgumentInvalid},
		{"string over 4 KB", `{"tags":{"s":"` + strings.Repeat("y", 4097) + `"}}`, iothub.CodeArgumentInvalid},
		{"tags over 8 KB", `{"tags":` + bigObject(3, 4000) + `}`, iothub.CodeArgumentInvalid},
		{"desired over 32 KB", `{"properties":{"desired":` + bigObject(9, 4000) + `}}`, iothub.CodeArgumentInvalid},
		{"too deep", deep, iothub.CodeArgumentInvalid},
		{"integer out of range", `{"tags":{"n":4503599627370496}}`, iothub.CodeArgumentInvalid},
		{"not an object", `[1,2]`, iothub.CodeArgumentInvalid},
		{"tags not an object", `{"tags":5}`, iothub.CodeArgumentInvalid},
		{"not JSON", `{"tags":`, iothub.CodeIotHubFormatError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, c.do("PATCH", "/twins/d1", tt.body), http.StatusBadRequest, tt.code)
		})
	}
	tw := c.do("GET", "/twins/d1", nil).json(t)
	if tw["version"] != 1.0 {
		t.Fatalf("rejected updates changed the twin: version %v", tw["version"])
	}
	// Copying $metadata and $version from a GET into a PUT is harmless.
	wantStatus(t, c.do("PUT", "/twins/d1", mustJSON(t, map[string]any{"deviceId": "d1", "tags": map[string]any{}, "properties": tw["properties"]})), http.StatusOK)
}

func TestTwin_ReplaceAndDesiredDelivery(t *testing.T) {
	h := startHub(t, Options{})
	h.mustCreate(t, "d1")
	c := h.rest(t, PolicyService)
	d := h.connect(t, "d1")
	d.subscribe(iothub.TopicDesiredFilter)

	wantStatus(t, c.do("PATCH", "/twins/d1", `{"properties":{"desired":{"a":1,"b":{"c":2}}}}`), http.StatusOK)
	m := d.nextDesired()
	if v, err := iothub.ParseDesiredPatchTopic(m.Topic()); err != nil || v != 2 {
		t.Fatalf("got topic %q, want $version=2", m.Topic())
	}
	if got := string(m.Payload()); got != `{"$version":2,"a":1,"b":{"c":2}}` {
		t.Fatalf("got notification %s", got)
	}
	wantStatus(t, c.do("PATCH", "/twins/d1", `{"properties":{"desired":{"b":null}}}`), http.StatusOK)
	if got := string(d.nextDesired().Payload()); got != `{"$version":3,"b":null}` {
		t.Fatalf("got notification %s, want the deletion as null", got)
	}
	// Tags never reach the device.
	wantStatus(t, c.do("PATCH", "/twins/d1", `{"tags":{"t":1}}`), http.StatusOK)
	// PUT replaces tags and desired; the device gets the whole document,
	// with removed members as null.
	tw := c.do("PUT", "/twins/d1", `{"tags":{"only":true},"properties":{"desired":{"z":"new"}}}`).json(t)
	if got := mustJSON(t, tw["tags"]); got != `{"only":true}` {
		t.Fatalf("got tags %s after PUT", got)
	}
	if path(tw, "properties", "desired", "a") != nil || path(tw, "properties", "desired", "z") != "new" {
		t.Fatalf("got desired %v after PUT", path(tw, "properties", "desired"))
	}
	if got := string(d.nextDesired().Payload()); got != `{"$version":4,"a":null,"z":"new"}` {
		t.Fatalf("got notification %s after PUT", got)
	}
	select {
	case m := <-d.desired:
		t.Fatalf("unexpected notification %s", m.Payload())
	default:
	}
}

func TestTwin_NotSubscribedGetsNoDesired(t *testing.T) {
	h := startHub(t, Options{})
	h.mustCreate(t, "d1")
	c := h.rest(t, PolicyService)
	d := h.connect(t, "d1")
	d.subscribe(iothub.TopicTwinResponseFilter)
	wantStatus(t, c.do("PATCH", "/twins/d1", `{"properties":{"desired":{"a":1}}}`), http.StatusOK)
	// A twin round trip on the same connection orders after any
	// notification the hub might have written.
	d.twinGet()
	select {
	case m := <-d.desired:
		t.Fatalf("got notification %s without a desired subscription", m.Payload())
	default:
	}
}

func TestTwin_MQTTGetAndReported(t *testing.T) {
	h := startHub(t, Options{})
	h.mustCreate(t, "d1")
	c := h.rest(t, PolicyService)
	wantStatus(t, c.do("PATCH", "/twins/d1", `{"tags":{"secret":1},"properties":{"desired":{"fw":"2.0"}}}`), http.StatusOK)
	d := h.connect(t, "d1")
	d.subscribe(iothub.TopicTwinResponseFilter)

	st, doc := d.twinGet()
	if st != 200 {
		t.Fatalf("got status %d, want 200", st)
	}
	if got := mustJSON(t, doc); got != `{"desired":{"$version":2,"fw":"2.0"},"reported":{"$version":1}}` {
		t.Fatalf("got twin %s", got)
	}

	h.clock.Advance(time.Second)
	st, ver, body := d.report(`{"fw":{"status":"downloading"},"n":1}`)
	if st != 204 || ver != 2 || len(body) != 0 {
		t.Fatalf("got %d $version=%d body %q, want 204 $version=2 and no body", st, ver, body)
	}
	st, ver, _ = d.report(`{"fw":{"status":"completed"},"n":null}`)
	if st != 204 || ver != 3 {
		t.Fatalf("got %d $version=%d, want 204 and 3", st, ver)
	}
	tw := c.do("GET", "/twins/d1", nil).json(t)
	if got := mustJSON(t, path(tw, "properties", "reported", "fw")); got != `{"status":"completed"}` {
		t.Fatalf("got reported fw %s", got)
	}
	if path(tw, "properties", "reported", "n") != nil || path(tw, "properties", "reported", "$version") != 3.0 {
		t.Fatalf("got reported %v", path(tw, "properties", "reported"))
	}
	if path(tw, "properties", "reported", "$metadata", "fw", "status", "$lastUpdated") != iothub.FormatTime(h.clock.Now()) {
		t.Fatalf("reported metadata: got %v", path(tw, "properties", "reported", "$metadata"))
	}
	log := h.ReportedLog("d1")
	if len(log) != 2 || log[0].Version != 2 || log[1].Version != 3 || !log[0].Received.Equal(h.clock.Now()) || string(log[1].Patch) != `{"fw":{"status":"completed"},"n":null}` {
		t.Fatalf("got reported log %+v", log)
	}

	tests := []struct {
		name, body string
		code       int
	}{
		{"not JSON", `{"fw":`, iothub.CodeIotHubFormatError},
		{"not an object", `[1]`, iothub.CodeArgumentInvalid},
		{"bad key", `{"a.b":1}`, iothub.CodeArgumentInvalid},
		{"$version in patch", `{"$version":4}`, iothub.CodeArgumentInvalid},
		{"over 32 KB", bigObject(9, 4000), iothub.CodeArgumentInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, _, body := d.report(tt.body)
			var e struct {
				ErrorCode int    `json:"errorCode"`
				Message   string `json:"message"`
			}
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("error body %q: %v", body, err)
			}
			if st != 400 || e.ErrorCode != tt.code || e.Message == "" {
				t.Fatalf("got %d %s, want 400 with errorCode %d", st, body, tt.code)
			}
		})
	}
	if s := h.Stats(); s.TwinReads != 2 || s.TwinUpdates != 8 {
		t.Fatalf("got %d twin reads and %d updates, want 2 and 8", s.TwinReads, s.TwinUpdates)
	}
}

// bigObject is a JSON object of n members, each a string of size characters.
func bigObject(n, size int) string {
	var members []string
	for i := range n {
		members = append(members, `"k`+string(rune('a'+i))+`":"`+strings.Repeat("x", size)+`"`)
	}
	return "{" + strings.Join(members, ",") + "}"
}
