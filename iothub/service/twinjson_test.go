package service

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/hubflow/hubflow/iothub"
)

// hubTwin is a twin as the hub sends it in a query page.
const hubTwin = `{"deviceId":"press-01","etag":"AAAAAAAAAAE=","deviceEtag":"NjI0","version":7,"status":"enabled",
"statusUpdateTime":"0001-01-01T00:00:00Z","connectionState":"Connected","lastActivityTime":"2026-11-22T22:53:04.5723391Z",
"cloudToDeviceMessageCount":0,"authenticationType":"sas","x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null},
"modelId":"","capabilities":{"iotEdge":false},"tags":{"site":"plant-7","floor":3,"ids":[1,2.5,-0.001e-3,true,null]},
"properties":{"desired":{"fw":{"uri":"https://x.example/a?b=c&amp;d"},"$metadata":{"$lastUpdated":"2026-11-22T22:53:04Z"},"$version":2},
"reported":{"firmwareStatus":"applying","text":"tab\tquote\" slash\/ é 日本 \u00e9 \u2028","$version":5}}}`

// checkSameTwins fails unless fastTwins either declines b or decodes it
// exactly as json.Unmarshal does; it reports whether fastTwins decoded it.
func checkSameTwins(t *testing.T, b []byte) bool {
	t.Helper()
	var want []*iothub.Twin
	wantErr := json.Unmarshal(b, &want)
	got, ok := fastTwins(b)
	if !ok {
		return false
	}
	if wantErr != nil {
		t.Fatalf("fastTwins decoded %q, which encoding/json refuses: %v", b, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(want)
		t.Fatalf("fastTwins(%q)\n got %s\nwant %s", b, gj, wj)
	}
	return true
}

func TestFastTwins_matchesEncodingJSON(t *testing.T) {
	decoded := []string{
		`[]`, ` [ ] `, `[` + hubTwin + `]`, `[` + hubTwin + `,` + hubTwin + "]\n",
		`[{"deviceId":"a","tags":null,"properties":null,"capabilities":null,"x509Thumbprint":null,"status":null,"version":null}]`,
		`[{"deviceId":"a","properties":{"reported":{"a":{"b":{"c":[[],{}]}},"a":2}}}]`,
		`[{"deviceId":"a","version":-0,"cloudToDeviceMessageCount":12,"x509Thumbprint":{"primaryThumbprint":"AB"}}]`,
		`[{"deviceId":"a","unknown":{"deep":[1,{"x":"y"}]},"properties":{"other":1}}]`,
	}
	for _, s := range decoded {
		if !checkSameTwins(t, []byte(s)) {
			t.Errorf("fastTwins declined %s", s)
		}
	}
	// Left to encoding/json, which decides: errors, and forms it reads in
	// its own way.
	declined := []string{
		``, `{}`, `[`, `[1]`, `[null]`, `[{}] x`, `[{"deviceId":1}]`, `[{"deviceId":"a",}]`,
		`[{"DeviceID":"a"}]`, `[{"deviceId":"a","deviceId":"b"}]`, `[{"deviceId":"a","tags":[]}]`,
		`[{"deviceId":"a","version":1.5}]`, `[{"deviceId":"a","version":1e2}]`, `[{"deviceId":"a","version":99999999999999999999}]`,
		`[{"deviceId":"a","tags":{"n":01}}]`, `[{"deviceId":"a","tags":{"n":1.}}]`, `[{"deviceId":"a","tags":{"n":1e999}}]`,
		`[{"deviceId":"bad \xff utf-8"}]`, `[{"deviceId":"\ud83d\ude00"}]`, `[{"deviceId":"ctl` + "\x01" + `"}]`,
		`[{"deviceId":"a","properties":{"Reported":{}}}]`, `[{"deviceId":"a","capabilities":{"iotEdge":1}}]`,
		`[{"deviceId":"a","tags":{"x":nul}}]`, `[{"deviceId":"a","tags":{"x":"\q"}}]`,
	}
	for _, s := range declined {
		if checkSameTwins(t, []byte(s)) {
			t.Errorf("fastTwins decoded %q; want it left to encoding/json", s)
		}
	}
}

// TestDecodeTwinPage_fastAndSlowAgree checks the page decoder on the
// common form and on one only encoding/json reads.
func TestDecodeTwinPage_fastAndSlowAgree(t *testing.T) {
	fast, _, err := decodeTwinPage([]byte(`[` + hubTwin + `]`))
	if err != nil || len(fast) != 1 || fast[0].Properties.Reported["firmwareStatus"] != "applying" || fast[0].Version != 7 {
		t.Fatalf("decodeTwinPage: got %+v (%v)", fast, err)
	}
	folded, _, err := decodeTwinPage([]byte(strings.Replace(`[`+hubTwin+`]`, `"deviceId"`, `"DEVICEID"`, 1)))
	if err != nil || len(folded) != 1 || folded[0].DeviceID != "press-01" {
		t.Fatalf("decodeTwinPage with a member in other case: got %+v (%v)", folded, err)
	}
	if _, _, err := decodeTwinPage([]byte(`[{"deviceId":"a"},]`)); err == nil {
		t.Fatal("decodeTwinPage accepted a trailing comma")
	}
}

func FuzzFastTwins(f *testing.F) {
	for _, s := range []string{
		`[` + hubTwin + `]`, `[{"deviceId":"a","tags":{"k":[1,"x",{"y":null}]}}]`,
		`[{"deviceId":"\u0041\n","version":3,"properties":{"desired":{"$version":1}}}]`, `[{"deviceid":"a"}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkSameTwins(t, b)
	})
}

func BenchmarkDecodeTwinPage(b *testing.B) {
	page := []byte(`[` + strings.Repeat(hubTwin+`,`, 99) + hubTwin + `]`)
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			if _, ok := fastTwins(page); !ok {
				b.Fatal("declined")
			}
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			var twins []*iothub.Twin
			if err := json.Unmarshal(page, &twins); err != nil {
				b.Fatal(err)
			}
		}
	})
}
