package query

import (
	"encoding/json"
	"iter"
	"slices"
	"strings"
	"testing"
)

// Fixture at a glance (see fixtureJSON):
//
//	id        site   floor ring    temp  fw     online status   conn         version
//	pump-1    north  1     canary  20.5  "2.0"  true   enabled  Connected    3
//	pump-2    north  2     -       30    "2.1"  false  enabled  Disconnected 5
//	pump-3    south  1     -       "hot" "2.1"  -      disabled Disconnected 1
//	valve-1   North  -     ga      10    -      -      enabled  Connected    2
//	valve-2   (no tags)    -       -     -      -      enabled  Connected    1
//	sensor-9  south  3     null    -4    3      -      enabled  Disconnected 7
func TestQuery_Match(t *testing.T) {
	all := []string{"pump-1", "pump-2", "pump-3", "valve-1", "valve-2", "sensor-9"}
	tests := []struct {
		name  string
		where string
		want  []string
	}{
		// equality and case rules
		{"tag equals", "tags.site = 'north'", []string{"pump-1", "pump-2"}},
		{"string values are case-sensitive", "tags.site = 'North'", []string{"valve-1"}},
		{"double-quoted string", `tags.site = "north"`, []string{"pump-1", "pump-2"}},
		{"unicode escape", `tags.site = 'nor\u0074h'`, []string{"pump-1", "pump-2"}},
		{"tag keys are case-sensitive", "tags.Site = 'north'", nil},
		{"system property any case", "DeviceId = 'pump-1'", []string{"pump-1"}},
		{"system property upper case", "STATUS = 'disabled'", []string{"pump-3"}},
		{"nested system names any case", "Capabilities.IoTEdge = true", []string{"sensor-9"}},
		{"properties and reported any case", "Properties.Reported.temp = 10", []string{"valve-1"}},
		{"lower-case keywords", "tags.site = 'north' and properties.reported.temp > 25", []string{"pump-2"}},
		{"metadata member", "properties.reported.$version = 4", []string{"pump-1"}},

		// undefined and type mismatches
		{"!= excludes missing", "tags.site != 'north'", []string{"pump-3", "valve-1", "sensor-9"}},
		{"<> excludes missing", "tags.site <> 'north'", []string{"pump-3", "valve-1", "sensor-9"}},
		{"!= excludes type mismatch", "properties.reported.temp != 30", []string{"pump-1", "valve-1", "sensor-9"}},
		{"number vs string is undefined", "properties.reported.fw.version = 3", []string{"sensor-9"}},
		{"string vs number is undefined", "properties.reported.temp = 'hot'", []string{"pump-3"}},
		{"compare with undefined constant", "tags.missing = undefined", nil},
		{"null equals null", "tags.ring = null", []string{"sensor-9"}},
		{"null vs string is undefined", "tags.ring != null", nil},
		{"reported null", "properties.reported.nothing = null", []string{"pump-1"}},
		{"objects do not compare", "tags.loc = tags.loc", nil},
		{"arrays do not compare", "tags.list = ['a', 'b']", nil},
		{"integral float equals int", "tags.floor = 1.0", []string{"pump-1", "pump-3"}},

		// ordering
		{"greater than", "properties.reported.temp > 15", []string{"pump-1", "pump-2"}},
		{"less than", "properties.reported.temp < 15", []string{"valve-1", "sensor-9"}},
		{"greater or equal", "properties.reported.temp >= 20.5", []string{"pump-1", "pump-2"}},
		{"less or equal", "properties.reported.temp <= 10", []string{"valve-1", "sensor-9"}},
		{"string ordering", "properties.reported.fw.version > '2.0'", []string{"pump-2", "pump-3"}},
		{"string ordering by byte", "deviceId > 'Valve'", all},
		{"string less than", "deviceId < 'pump-2'", []string{"pump-1"}},
		{"timestamps as strings", "lastActivityTime > '2025-05-01T12:00:00Z'", []string{"pump-2"}},
		{"booleans do not order", "properties.reported.online > false", nil},
		{"hex constant", "version = 0x7", []string{"sensor-9"}},
		{"exponent constant", "version > 1e0 AND version < 3", []string{"valve-1"}},

		// IN / NIN
		{"in", "tags.site IN ['north', 'south']", []string{"pump-1", "pump-2", "pump-3", "sensor-9"}},
		{"nin excludes missing", "tags.site NIN ['north', 'south']", []string{"valve-1"}},
		{"not in", "tags.site NOT IN ['north']", []string{"pump-3", "valve-1", "sensor-9"}},
		{"in matches types exactly", "tags.floor IN [1, '2']", []string{"pump-1", "pump-3"}},
		{"in with null", "tags.ring IN [null]", []string{"sensor-9"}},
		{"in with booleans", "properties.reported.online in [false]", []string{"pump-2"}},
		{"in with negative number", "properties.reported.temp IN [-4, 10]", []string{"valve-1", "sensor-9"}},
		{"in with empty list", "deviceId IN []", nil},
		{"nin with empty list", "deviceId NIN []", all},
		{"in on an object", "tags.loc IN ['x']", nil},

		// logic
		{"bare true property", "properties.reported.online", []string{"pump-1"}},
		{"bare string is not true", "tags.site", nil},
		{"not", "NOT properties.reported.online", []string{"pump-2"}},
		{"not binds looser than =", "NOT tags.site = 'north'", []string{"pump-3", "valve-1", "sensor-9"}},
		{"not of undefined", "NOT tags.missing", nil},
		{"or", "tags.site = 'north' OR tags.site = 'south'", []string{"pump-1", "pump-2", "pump-3", "sensor-9"}},
		{"or with undefined", "tags.site = 'south' OR properties.reported.temp > 25", []string{"pump-2", "pump-3", "sensor-9"}},
		{"false decides and", "NOT (tags.site = 'zzz' AND tags.missing = 1)", []string{"pump-1", "pump-2", "pump-3", "valve-1", "sensor-9"}},
		{"and binds tighter than or", "tags.site = 'south' AND version = 7 OR deviceId = 'pump-1'", []string{"pump-1", "sensor-9"}},
		{"parentheses", "(tags.site = 'south' OR tags.missing = 1) AND status = 'enabled'", []string{"sensor-9"}},
		{"constant true", "true", all},
		{"constant false", "false", nil},
		{"constant null", "null", nil},
		{"constant comparison", "1 = 1", all},

		// arithmetic
		{"multiply", "properties.reported.temp * 2 > 50", []string{"pump-2"}},
		{"add", "properties.reported.temp + 1 = 11", []string{"valve-1"}},
		{"subtract", "properties.reported.temp - 0.5 = 20", []string{"pump-1"}},
		{"divide", "properties.reported.temp / 2 = 15", []string{"pump-2"}},
		{"modulo", "properties.reported.temp % 3 = 1", []string{"valve-1"}},
		{"unary minus", "-properties.reported.temp = 4", []string{"sensor-9"}},
		{"unary plus", "+properties.reported.temp = 10", []string{"valve-1"}},
		{"division by zero", "properties.reported.temp / 0 = 1", nil},
		{"modulo by zero", "properties.reported.temp % 0 = 1", nil},
		{"precedence", "tags.floor + tags.floor * 2 = 9", []string{"sensor-9"}},
		{"grouping", "(tags.floor + tags.floor) * 2 = 8", []string{"pump-2"}},
		{"plus does not concatenate", "deviceId + 'x' = 'pump-1x'", nil},

		// paths
		{"array index", "tags.list[0] = 'a'", []string{"pump-1"}},
		{"array index out of range", "tags.list[5] = 'a'", nil},
		{"quoted member", "tags['my-key'] = 'x'", []string{"pump-1"}},
		{"escaped member", "tags.[[my-key]] = 'x'", []string{"pump-1"}},
		{"escaped reserved word", "tags.[[group]] = 'a'", []string{"pump-1"}},
		{"escaped root", "[[tags]].site = 'south'", []string{"pump-3", "sensor-9"}},
		{"escaped member without dot", "tags[[group]] = 'a'", []string{"pump-1"}},
		{"nested object member", "tags.loc.lat = 1.5", []string{"pump-1", "pump-2"}},
		{"member of a primitive", "tags.site.x = 1", nil},

		// functions
		{"is_defined", "IS_DEFINED(tags.ring)", []string{"pump-1", "valve-1", "sensor-9"}},
		{"is_defined lower case", "is_defined(properties.reported.fw)", []string{"pump-1", "pump-2", "pump-3", "sensor-9"}},
		{"not is_defined", "NOT IS_DEFINED(tags)", []string{"valve-2"}},
		{"startswith", "STARTSWITH(deviceId, 'pump')", []string{"pump-1", "pump-2", "pump-3"}},
		{"startswith is case-sensitive", "startswith(deviceId, 'PUMP')", nil},
		{"startswith ignoring case", "StartsWith(deviceId, 'PUMP', true)", []string{"pump-1", "pump-2", "pump-3"}},
		{"startswith bad ignore-case flag", "STARTSWITH(deviceId, 'pump', 'yes')", nil},
		{"endswith", "ENDSWITH(deviceId, '-1')", []string{"pump-1", "valve-1"}},
		{"startswith on a string property", "STARTSWITH(properties.reported.temp, 'h')", []string{"pump-3"}},
		{"startswith on a number", "STARTSWITH(version, '1')", nil},
		{"contains", "CONTAINS(deviceId, 'ns')", []string{"sensor-9"}},
		{"is_string", "IS_STRING(properties.reported.temp)", []string{"pump-3"}},
		{"is_number", "IS_NUMBER(properties.reported.temp)", []string{"pump-1", "pump-2", "valve-1", "sensor-9"}},
		{"is_bool", "IS_BOOL(properties.reported.online)", []string{"pump-1", "pump-2"}},
		{"is_null", "IS_NULL(tags.ring)", []string{"sensor-9"}},
		{"is_object", "IS_OBJECT(tags.loc)", []string{"pump-1", "pump-2"}},
		{"is_array", "IS_ARRAY(tags.list)", []string{"pump-1"}},
		{"is_primitive", "IS_PRIMITIVE(tags.ring)", []string{"pump-1", "valve-1", "sensor-9"}},
		{"mixed", "connectionState = 'Connected' AND NOT STARTSWITH(deviceId, 'pump')", []string{"valve-1", "valve-2"}},
	}
	docs := fixture(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.want
			if want == nil {
				want = []string{}
			}
			q := mustParse(t, "SELECT * FROM devices WHERE "+tt.where)
			rows, _, err := q.Execute(slices.Values(docs))
			if err != nil {
				t.Fatalf("Execute: %v", err)
			}
			if got := ids(t, rows); !slices.Equal(got, want) {
				t.Errorf("Execute: got %v, want %v", got, want)
			}
			var matched []string
			for _, d := range docs {
				if q.Match(d) {
					matched = append(matched, d["deviceId"].(string))
				}
			}
			if matched == nil {
				matched = []string{}
			}
			if !slices.Equal(matched, want) {
				t.Errorf("Match: got %v, want %v", matched, want)
			}
		})
	}
}

func TestQuery_Execute(t *testing.T) {
	tests := []struct {
		name string
		text string
		want string // JSON of the rows
	}{
		// projections
		{"system properties", "SELECT deviceId, lastActivityTime FROM devices WHERE tags.site = 'north'",
			`[{"deviceId":"pump-1","lastActivityTime":"2025-05-01T10:00:00Z"},{"deviceId":"pump-2","lastActivityTime":"2025-05-02T10:00:00Z"}]`},
		{"canonical names", "SELECT DeviceId, LASTACTIVITYTIME FROM devices WHERE deviceId = 'pump-1'",
			`[{"deviceId":"pump-1","lastActivityTime":"2025-05-01T10:00:00Z"}]`},
		{"nested path keyed by last segment", "SELECT properties.reported.fw FROM devices WHERE deviceId = 'pump-1'",
			`[{"fw":{"version":"2.0"}}]`},
		{"aliases and missing values", "SELECT properties.reported.fw.version AS fw, tags.site AS site FROM devices WHERE deviceId IN ['pump-1', 'valve-2']",
			`[{"fw":"2.0","site":"north"},{}]`},
		{"computed values", "SELECT deviceId, properties.reported.temp * 2 AS t2, tags.floor + 1 FROM devices WHERE deviceId = 'pump-2'",
			`[{"$3":3,"deviceId":"pump-2","t2":60}]`},
		{"undefined computation left out", "SELECT deviceId, properties.reported.temp * 2 AS t2 FROM devices WHERE deviceId = 'pump-3'",
			`[{"deviceId":"pump-3"}]`},
		{"array index keyed by position", "SELECT tags.list[1] FROM devices WHERE deviceId = 'pump-1'",
			`[{"$1":"b"}]`},
		{"constants", "SELECT 'x' AS k, null AS n, [1, 'a', [true]] AS arr, -2 AS neg FROM devices WHERE deviceId = 'pump-1'",
			`[{"arr":[1,"a",[true]],"k":"x","n":null,"neg":-2}]`},
		{"escaped names", "SELECT tags.[[group]], tags.site AS [[select]] FROM devices WHERE deviceId = 'pump-1'",
			`[{"group":"a","select":"north"}]`},
		{"function value", "SELECT STARTSWITH(deviceId, 'v') AS v FROM devices WHERE tags.site = 'North'",
			`[{"v":true}]`},

		// aggregates
		{"count", "SELECT COUNT() AS total FROM devices", `[{"total":6}]`},
		{"count of nothing", "SELECT COUNT() FROM devices WHERE tags.site = 'nowhere'", `[{"count":0}]`},
		{"all aggregates", "SELECT COUNT(tags.ring) AS withRing, SUM(properties.reported.temp) AS s, AVG(properties.reported.temp) AS a, " +
			"MIN(properties.reported.temp) AS lo, MAX(properties.reported.temp) AS hi FROM devices",
			`[{"a":14.125,"hi":"hot","lo":-4,"s":56.5,"withRing":3}]`},
		{"aggregates of nothing", "SELECT SUM(tags.nope) AS s, AVG(tags.nope) AS a, MIN(tags.nope) AS m, MAX(tags.nope) AS x FROM devices",
			`[{"s":0}]`},
		{"min of null", "SELECT MIN(tags.ring) AS m FROM devices", `[{"m":null}]`},
		{"un-aliased aggregates", "select sum(version), max(deviceId) from devices", `[{"max":"valve-2","sum":19}]`},
		{"aggregate with where", "SELECT COUNT() AS n FROM devices WHERE status = 'enabled'", `[{"n":5}]`},

		// GROUP BY
		{"group by tag", "SELECT tags.site AS site, COUNT() AS n FROM devices GROUP BY tags.site",
			`[{"n":2,"site":"north"},{"n":2,"site":"south"},{"n":1,"site":"North"},{"n":1}]`},
		{"unselected key is added", "SELECT COUNT() AS n FROM devices GROUP BY status",
			`[{"n":5,"status":"enabled"},{"n":1,"status":"disabled"}]`},
		{"two keys", "SELECT status, connectionState, COUNT() AS n FROM devices GROUP BY status, connectionState",
			`[{"connectionState":"Connected","n":3,"status":"enabled"},{"connectionState":"Disconnected","n":2,"status":"enabled"},{"connectionState":"Disconnected","n":1,"status":"disabled"}]`},
		{"keys of different types stay apart", "SELECT properties.reported.fw.version AS v, COUNT() AS n FROM devices WHERE IS_DEFINED(properties.reported.fw) GROUP BY properties.reported.fw.version",
			`[{"n":1,"v":"2.0"},{"n":2,"v":"2.1"},{"n":1,"v":3}]`},
		{"object key", "SELECT COUNT() AS n FROM devices GROUP BY tags.loc",
			`[{"loc":{"lat":1.5},"n":2},{"n":4}]`},
		{"distinct values", "SELECT tags.site FROM devices GROUP BY tags.site",
			`[{"site":"north"},{"site":"south"},{"site":"North"},{}]`},
		{"system key any case", "SELECT Status, COUNT() AS n FROM devices GROUP BY STATUS",
			`[{"n":5,"status":"enabled"},{"n":1,"status":"disabled"}]`},
		{"aggregates per group", "SELECT tags.site AS site, AVG(properties.reported.temp) AS t, MAX(version) AS v FROM devices WHERE IS_DEFINED(tags.site) GROUP BY tags.site",
			`[{"site":"north","t":25.25,"v":5},{"site":"south","t":-4,"v":7},{"site":"North","t":10,"v":2}]`},
		{"group by with no rows", "SELECT COUNT() AS n FROM devices WHERE false GROUP BY status", `[]`},

		// TOP
		{"top", "SELECT TOP 2 deviceId FROM devices", `[{"deviceId":"pump-1"},{"deviceId":"pump-2"}]`},
		{"top zero", "SELECT TOP 0 * FROM devices", `[]`},
		{"top larger than result", "select top 10 deviceId from devices where status = 'disabled'", `[{"deviceId":"pump-3"}]`},
		{"top with aggregate", "SELECT TOP 1 COUNT() AS n FROM devices", `[{"n":6}]`},
		{"top with group by", "SELECT TOP 2 tags.site AS site, COUNT() AS n FROM devices GROUP BY tags.site",
			`[{"n":2,"site":"north"},{"n":2,"site":"south"}]`},
	}
	docs := fixture(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, itemType := execute(t, tt.text, docs)
			if got := asJSON(t, rows); got != tt.want {
				t.Errorf("rows: got %s, want %s", got, tt.want)
			}
			if itemType != ItemRaw && !strings.Contains(tt.text, "*") {
				t.Errorf("item type: got %q, want %q", itemType, ItemRaw)
			}
		})
	}
}

func TestQuery_ExecuteItemType(t *testing.T) {
	tests := []struct {
		text       string
		wantSource string
		wantStar   bool
		wantType   string
	}{
		{"SELECT * FROM devices", SourceDevices, true, ItemTwin},
		{"SELECT * FROM Devices.Modules", SourceModules, true, ItemTwin},
		{"SELECT * FROM DEVICES.JOBS", SourceJobs, true, ItemDeviceJob},
		{"SELECT deviceId FROM devices", SourceDevices, false, ItemRaw},
		{"SELECT COUNT() AS n FROM devices.modules", SourceModules, false, ItemRaw},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			q := mustParse(t, tt.text)
			if got := q.Source(); got != tt.wantSource {
				t.Errorf("Source: got %q, want %q", got, tt.wantSource)
			}
			if got := q.IsSelectStar(); got != tt.wantStar {
				t.Errorf("IsSelectStar: got %v, want %v", got, tt.wantStar)
			}
			if got := q.String(); got != tt.text {
				t.Errorf("String: got %q, want %q", got, tt.text)
			}
			_, itemType, err := q.Execute(slices.Values([]map[string]any{}))
			if err != nil {
				t.Fatalf("Execute: %v", err)
			}
			if itemType != tt.wantType {
				t.Errorf("item type: got %q, want %q", itemType, tt.wantType)
			}
		})
	}
}

func TestQuery_ExecuteSelectStarReturnsDocuments(t *testing.T) {
	docs := fixture(t)
	rows, _ := execute(t, "SELECT * FROM devices WHERE deviceId = 'pump-2'", docs)
	if len(rows) != 1 {
		t.Fatalf("got %d rows, want 1", len(rows))
	}
	row, ok := rows[0].(map[string]any)
	if !ok {
		t.Fatalf("row is %T, want map[string]any", rows[0])
	}
	row["marker"] = true
	if docs[1]["marker"] != true {
		t.Errorf("SELECT * row is a copy, want the document itself")
	}
}

// counted yields docs and records how many were taken.
func counted(docs []map[string]any, n *int) iter.Seq[map[string]any] {
	return func(yield func(map[string]any) bool) {
		for _, d := range docs {
			*n++
			if !yield(d) {
				return
			}
		}
	}
}

func TestQuery_ExecuteTopStopsEarly(t *testing.T) {
	tests := []struct {
		text     string
		wantRead int
		wantRows int
	}{
		{"SELECT TOP 2 * FROM devices WHERE tags.site = 'north'", 2, 2},
		{"SELECT TOP 1 deviceId FROM devices WHERE status = 'disabled'", 3, 1},
		{"SELECT TOP 0 * FROM devices", 0, 0},
		{"SELECT TOP 1 COUNT() AS n FROM devices", 6, 1},
		{"SELECT TOP 1 COUNT() AS n FROM devices GROUP BY status", 6, 1},
	}
	docs := fixture(t)
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			read := 0
			rows, _, err := mustParse(t, tt.text).Execute(counted(docs, &read))
			if err != nil {
				t.Fatalf("Execute: %v", err)
			}
			if read != tt.wantRead {
				t.Errorf("documents read: got %d, want %d", read, tt.wantRead)
			}
			if len(rows) != tt.wantRows {
				t.Errorf("rows: got %d, want %d", len(rows), tt.wantRows)
			}
		})
	}
}

func TestQuery_ExecuteJobs(t *testing.T) {
	jobs := decodeDocs(t, jobsJSON)
	tests := []struct {
		text string
		want []string // deviceId/jobId
	}{
		{"SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'fw-1'", []string{"pump-1/fw-1", "pump-2/fw-1"}},
		{"SELECT * FROM devices.jobs WHERE DEVICES.JOBS.JOBID = 'fw-1' AND devices.jobs.Status = 'failed'", []string{"pump-2/fw-1"}},
		{"SELECT * FROM devices.jobs WHERE devices.jobs.outcome.deviceMethodResponse.status = 200", []string{"pump-1/fw-1"}},
		{"SELECT * FROM devices.jobs WHERE devices.jobs.deviceId = 'pump-1' AND devices.jobs.jobType = 'scheduleUpdateTwin'", []string{"pump-1/cfg-1"}},
		{"SELECT * FROM devices.jobs WHERE IS_DEFINED(devices.jobs.error)", []string{"pump-2/fw-1"}},
		{"SELECT * FROM devices.jobs", []string{"pump-1/fw-1", "pump-2/fw-1", "pump-1/cfg-1"}},
		{"SELECT TOP 1 * FROM devices.jobs", []string{"pump-1/fw-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			rows, itemType := execute(t, tt.text, jobs)
			if itemType != ItemDeviceJob {
				t.Errorf("item type: got %q, want %q", itemType, ItemDeviceJob)
			}
			got := []string{}
			for _, r := range rows {
				m := r.(map[string]any)
				got = append(got, m["deviceId"].(string)+"/"+m["jobId"].(string))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestQuery_ExecuteModules(t *testing.T) {
	modules := decodeDocs(t, `[
	 {"deviceId":"gw-1","moduleId":"edgeAgent","status":"enabled","properties":{"reported":{"state":"running"}}},
	 {"deviceId":"gw-1","moduleId":"filter","status":"enabled","properties":{"reported":{"state":"scanning"}}},
	 {"deviceId":"gw-2","moduleId":"filter","status":"enabled","properties":{"reported":{"state":"running"}}}]`)
	rows, itemType := execute(t, "SELECT * FROM devices.modules WHERE ModuleId = 'filter' AND properties.reported.state = 'running'", modules)
	if itemType != ItemTwin {
		t.Errorf("item type: got %q, want %q", itemType, ItemTwin)
	}
	if got, want := ids(t, rows), []string{"gw-2"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	rows, _ = execute(t, "SELECT deviceId, moduleId FROM devices.modules WHERE properties.reported.state = 'scanning'", modules)
	if got, want := asJSON(t, rows), `[{"deviceId":"gw-1","moduleId":"filter"}]`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// TestQuery_MatchGoTypes checks documents built in Go rather than decoded
// from JSON: integer types and json-like nesting are understood.
func TestQuery_MatchGoTypes(t *testing.T) {
	doc := map[string]any{
		"deviceId": "d",
		"version":  int64(4),
		"tags":     map[string]any{"n": 3, "u": uint32(7), "f": float32(1.5), "odd": struct{}{}},
	}
	tests := []struct {
		where string
		want  bool
	}{
		{"version = 4", true},
		{"tags.n = 3", true},
		{"tags.u > 6", true},
		{"tags.f = 1.5", true},
		{"IS_DEFINED(tags.odd)", false},
	}
	for _, tt := range tests {
		t.Run(tt.where, func(t *testing.T) {
			if got := mustParse(t, "SELECT * FROM devices WHERE "+tt.where).Match(doc); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestQuery_MatchWithoutWhere(t *testing.T) {
	if !mustParse(t, "SELECT * FROM devices").Match(map[string]any{}) {
		t.Errorf("got false, want true for a query without WHERE")
	}
}

func TestParseCondition(t *testing.T) {
	tests := []struct {
		where   string
		want    []string
		wantAll bool
	}{
		{"*", []string{"pump-1", "pump-2", "pump-3", "valve-1", "valve-2", "sensor-9"}, true},
		{" * ", []string{"pump-1", "pump-2", "pump-3", "valve-1", "valve-2", "sensor-9"}, true},
		{"deviceId IN ['pump-1','valve-2']", []string{"pump-1", "valve-2"}, false},
		{"tags.site = 'north'", []string{"pump-1", "pump-2"}, false},
		{"devices.jobs.jobId = 'x'", []string{}, false},
	}
	docs := fixture(t)
	for _, tt := range tests {
		t.Run(tt.where, func(t *testing.T) {
			c, err := ParseCondition(tt.where)
			if err != nil {
				t.Fatalf("ParseCondition: %v", err)
			}
			got := []string{}
			for _, d := range docs {
				if c.Match(d) {
					got = append(got, d["deviceId"].(string))
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			if c.MatchesAll() != tt.wantAll {
				t.Errorf("MatchesAll: got %v, want %v", c.MatchesAll(), tt.wantAll)
			}
			if c.String() != tt.where {
				t.Errorf("String: got %q, want %q", c.String(), tt.where)
			}
		})
	}
}

// TestQuery_ExecuteConcurrently runs one parsed query from several
// goroutines; -race reports any state shared between executions.
func TestQuery_ExecuteConcurrently(t *testing.T) {
	docs := fixture(t)
	queries := []*Query{
		mustParse(t, "SELECT * FROM devices WHERE tags.site IN ['north', 'south'] AND properties.reported.temp > 0"),
		mustParse(t, "SELECT tags.site AS site, COUNT() AS n, MAX(version) AS v FROM devices GROUP BY tags.site"),
		mustParse(t, "SELECT deviceId, properties.reported.fw.version AS fw FROM devices"),
	}
	want := make([]string, len(queries))
	for i, q := range queries {
		rows, _, err := q.Execute(slices.Values(docs))
		if err != nil {
			t.Fatal(err)
		}
		want[i] = asJSON(t, rows)
	}
	errs := make(chan string, 8*len(queries))
	done := make(chan struct{})
	for range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i, q := range queries {
				rows, _, err := q.Execute(slices.Values(docs))
				if err != nil {
					errs <- err.Error()
					continue
				}
				b, _ := json.Marshal(rows)
				if string(b) != want[i] {
					errs <- "got " + string(b) + ", want " + want[i]
				}
			}
		}()
	}
	for range 8 {
		<-done
	}
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestQuery_DeviceIDs(t *testing.T) {
	for _, tc := range []struct {
		q    string
		ids  []string
		want bool
	}{
		{"SELECT * FROM devices WHERE deviceId IN ['a', 'b']", []string{"a", "b"}, true},
		{"SELECT * FROM devices WHERE deviceId = 'a'", []string{"a"}, true},
		{"SELECT * FROM devices WHERE 'a' = deviceId", []string{"a"}, true},
		{"SELECT * FROM devices WHERE tags.site = 'x' AND deviceId IN ['a']", []string{"a"}, true},
		{"SELECT * FROM devices WHERE deviceId IN ['a'] OR tags.site = 'x'", nil, false},
		{"SELECT * FROM devices WHERE deviceId NOT IN ['a']", nil, false},
		{"SELECT * FROM devices WHERE deviceId IN ['a', 1]", nil, false},
		{"SELECT * FROM devices WHERE deviceId != 'a'", nil, false},
		{"SELECT * FROM devices WHERE tags.deviceId = 'a'", nil, false},
		{"SELECT * FROM devices", nil, false},
	} {
		t.Run(tc.q, func(t *testing.T) {
			q, err := Parse(tc.q)
			if err != nil {
				t.Fatal(err)
			}
			ids, ok := q.DeviceIDs()
			if ok != tc.want || !slices.Equal(ids, tc.ids) {
				t.Errorf("got %q, %v; want %q, %v", ids, ok, tc.ids, tc.want)
			}
		})
	}
}
