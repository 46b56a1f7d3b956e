package emulator

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hubflow/hubflow/iothub"
)

// Twin limits from the hub's documentation.
const (
	maxTagsSize       = 8 * 1024
	maxPropertiesSize = 32 * 1024
	maxKeyLength      = 1024
	maxStringLength   = 4 * 1024
	maxDepth          = 10
	maxSafeInteger    = 4503599627370495
	minSafeInteger    = -4503599627370496
)

// tnode is one member of a twin section: an object (obj != nil) or a leaf
// value. Every node remembers when it last changed and, for desired
// properties, the section version of that change; this is the $metadata the
// hub reports.
type tnode struct {
	obj     map[string]*tnode
	val     any // leaf: float64, string, bool or []any as JSON decodes them
	updated time.Time
	version int64
}

func newObject(now time.Time, version int64) *tnode {
	return &tnode{obj: map[string]*tnode{}, updated: now, version: version}
}

// merge applies a JSON merge patch to the object n: members add or replace,
// null deletes, objects merge recursively, arrays are replaced whole. It
// reports whether anything was touched (a patch member always counts, even
// when it sets a value equal to the old one, as the hub bumps versions).
func (n *tnode) merge(patch map[string]any, now time.Time, version int64) bool {
	changed := false
	for k, v := range patch {
		switch v := v.(type) {
		case nil:
			if _, ok := n.obj[k]; ok {
				delete(n.obj, k)
				changed = true
			}
		case map[string]any:
			child := n.obj[k]
			if child == nil || child.obj == nil {
				child = newObject(now, version)
				n.obj[k] = child
			}
			child.merge(v, now, version)
			child.updated, child.version = now, version
			changed = true
		default:
			n.obj[k] = &tnode{val: v, updated: now, version: version}
			changed = true
		}
	}
	if changed {
		n.updated, n.version = now, version
	}
	return changed
}

// fromValue builds a node tree for v, stamped with now and version.
func fromValue(v any, now time.Time, version int64) *tnode {
	m, ok := v.(map[string]any)
	if !ok {
		return &tnode{val: v, updated: now, version: version}
	}
	n := newObject(now, version)
	for k, cv := range m {
		if cv == nil {
			continue
		}
		n.obj[k] = fromValue(cv, now, version)
	}
	return n
}

// value renders n as plain JSON-decoded data (fresh maps; slices shared,
// they are never mutated).
func (n *tnode) value() any {
	if n.obj == nil {
		return n.val
	}
	m := make(map[string]any, len(n.obj))
	for k, c := range n.obj {
		m[k] = c.value()
	}
	return m
}

// metadata renders n's $metadata tree.
func (n *tnode) metadata(withVersion bool) map[string]any {
	m := make(map[string]any, len(n.obj)+2)
	m["$lastUpdated"] = iothub.FormatTime(n.updated)
	if withVersion {
		m["$lastUpdatedVersion"] = float64(n.version)
	}
	for k, c := range n.obj {
		m[k] = c.metadata(withVersion)
	}
	return m
}

// twin is the mutable part of a device twin. It is guarded by its device's
// mutex.
type twin struct {
	version  int64 // twin version; also the etag counter
	tags     *tnode
	desired  *tnode
	reported *tnode
	desVer   int64
	repVer   int64
}

func newTwin(now time.Time) twin {
	return twin{
		version:  1,
		tags:     newObject(now, 1),
		desired:  newObject(now, 1),
		reported: newObject(now, 1),
		desVer:   1,
		repVer:   1,
	}
}

// etag is the twin's etag: base64 of the version as 8 big-endian bytes, the
// form the hub shows.
func (t *twin) etag() string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(t.version))
	return base64.StdEncoding.EncodeToString(b[:])
}

// section renders desired or reported the way REST and queries show it:
// values, $metadata and $version.
func section(n *tnode, version int64, desired bool) map[string]any {
	m := n.value().(map[string]any)
	m["$metadata"] = n.metadata(desired)
	m["$version"] = float64(version)
	return m
}

// deviceSection renders a section as a device sees it on twin GET: values and
// $version only.
func deviceSection(n *tnode, version int64) map[string]any {
	m := n.value().(map[string]any)
	m["$version"] = float64(version)
	return m
}

// errTwinInvalid marks a patch the hub rejects with 400 ArgumentInvalid.
var errTwinInvalid = errors.New("invalid twin update")

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errTwinInvalid, fmt.Sprintf(format, args...))
}

// decodeJSON decodes b keeping numbers exact so that they can be checked
// against the hub's integer range, then converts them to float64.
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("trailing data after JSON value")
	}
	return v, nil
}

// normalizePatch validates a twin patch object (keys, depth, string length,
// integer range) and converts json.Number values to float64. depth is the
// nesting level of patch's members below the section root (1 for the root).
func normalizePatch(patch map[string]any, depth int) error {
	if depth > maxDepth {
		return invalidf("properties nest deeper than %d levels", maxDepth)
	}
	for k, v := range patch {
		if err := checkKey(k); err != nil {
			return err
		}
		nv, err := normalizeValue(v, depth, k)
		if err != nil {
			return err
		}
		patch[k] = nv
	}
	return nil
}

func normalizeValue(v any, depth int, key string) (any, error) {
	switch v := v.(type) {
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return nil, invalidf("value of %q is not a number the hub accepts", key)
		}
		if !strings.ContainsAny(string(v), ".eE") && (f > maxSafeInteger || f < minSafeInteger) {
			return nil, invalidf("integer value of %q is outside [%d, %d]", key, int64(minSafeInteger), int64(maxSafeInteger))
		}
		return f, nil
	case string:
		if utf8.RuneCountInString(v) > maxStringLength {
			return nil, invalidf("string value of %q is longer than %d characters", key, maxStringLength)
		}
		return v, nil
	case map[string]any:
		return v, normalizePatch(v, depth+1)
	case []any:
		for i, e := range v {
			ne, err := normalizeValue(e, depth+1, key)
			if err != nil {
				return nil, err
			}
			v[i] = ne
		}
		return v, nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, invalidf("value of %q is not a finite number", key)
		}
		return v, nil
	}
	return v, nil
}

func checkKey(k string) error {
	switch {
	case k == "":
		return invalidf("property names cannot be empty")
	case len(k) > maxKeyLength:
		return invalidf("property name %.32q… is longer than %d bytes", k, maxKeyLength)
	case strings.ContainsAny(k, ".$ "):
		return invalidf("property name %q contains '.', '$' or a space", k)
	}
	for _, r := range k {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) {
			return invalidf("property name %q contains a control character", k)
		}
	}
	return nil
}

// jsonSize is the hub's size measure: key lengths plus values, numbers 8
// bytes, booleans 4, strings by character count.
func jsonSize(v any) int {
	switch v := v.(type) {
	case map[string]any:
		n := 0
		for k, c := range v {
			n += len(k) + jsonSize(c)
		}
		return n
	case []any:
		n := 0
		for _, c := range v {
			n += jsonSize(c)
		}
		return n
	case string:
		return utf8.RuneCountInString(v)
	case float64, json.Number:
		return 8
	case bool:
		return 4
	}
	return 0
}

// nodeSize is jsonSize of a node tree without rendering it.
func (n *tnode) size() int {
	if n.obj == nil {
		return jsonSize(n.val)
	}
	s := 0
	for k, c := range n.obj {
		s += len(k) + c.size()
	}
	return s
}

// clone deep-copies n (leaf slices are shared: they are never mutated).
func (n *tnode) clone() *tnode {
	c := *n
	if n.obj != nil {
		c.obj = make(map[string]*tnode, len(n.obj))
		for k, v := range n.obj {
			c.obj[k] = v.clone()
		}
	}
	return &c
}

// twinChange describes one accepted update, for notifications and logs.
type twinChange struct {
	tags, desired bool
	desiredPatch  map[string]any // as delivered to the device, with $version
}

// patchService applies a service-side PATCH (merge) or PUT (replace) of tags
// and desired properties. On error nothing changes.
func (t *twin) patchService(tags, desired map[string]any, replace bool, now time.Time) (twinChange, error) {
	var ch twinChange
	newTags, newDesired := t.tags, t.desired
	desVer := t.desVer + 1
	if replace {
		newTags = fromValue(orEmpty(tags), now, 0)
		newDesired = fromValue(orEmpty(desired), now, desVer)
		ch.tags, ch.desired = true, true
	} else {
		if len(tags) > 0 {
			newTags = t.tags.clone()
			ch.tags = newTags.merge(tags, now, 0)
		}
		if len(desired) > 0 {
			newDesired = t.desired.clone()
			ch.desired = newDesired.merge(desired, now, desVer)
		}
	}
	if s := newTags.size(); s > maxTagsSize {
		return twinChange{}, invalidf("tags would be %d bytes; the limit is %d", s, maxTagsSize)
	}
	if s := newDesired.size(); s > maxPropertiesSize {
		return twinChange{}, invalidf("desired properties would be %d bytes; the limit is %d", s, maxPropertiesSize)
	}
	if !ch.tags && !ch.desired {
		return ch, nil
	}
	if ch.desired {
		var patch map[string]any
		if replace {
			// The device merges notifications, so a replacement also names
			// the members it removes.
			patch = maps.Clone(orEmpty(desired))
			for k := range t.desired.obj {
				if _, ok := patch[k]; !ok {
					patch[k] = nil
				}
			}
		} else {
			patch = maps.Clone(desired)
		}
		patch["$version"] = float64(desVer)
		ch.desiredPatch = patch
		t.desired, t.desVer = newDesired, desVer
	}
	if ch.tags {
		t.tags = newTags
	}
	t.version++
	return ch, nil
}

// patchReported merges a device's reported patch and returns the new
// reported version.
func (t *twin) patchReported(patch map[string]any, now time.Time) (int64, error) {
	next := t.reported.clone()
	next.merge(patch, now, 0)
	if s := next.size(); s > maxPropertiesSize {
		return 0, invalidf("reported properties would be %d bytes; the limit is %d", s, maxPropertiesSize)
	}
	t.reported = next
	t.repVer++
	t.version++
	return t.repVer, nil
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}
