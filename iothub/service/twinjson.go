package service

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hubflow/hubflow/iothub"
)

// fastTwins decodes a JSON array of twins as json.Unmarshal into
// []*iothub.Twin does, for the form the hub sends. A runner following
// thousands of devices reads twins by the page several times a second, and
// encoding/json, which checks the whole input before decoding it and fills
// maps by reflection, was the larger part of that. ok is false as soon as
// the input strays from the usual form (anything invalid, a member name
// that matches a field only when case is ignored, a repeated member, an
// escape in a string beyond the simple ones...): the caller then decodes
// with encoding/json, whose answer, or error, stands.
func fastTwins(b []byte) (twins []*iothub.Twin, ok bool) {
	d := &twinDecoder{b: b}
	d.space()
	if !d.take('[') {
		return nil, false
	}
	twins = []*iothub.Twin{}
	d.space()
	if d.take(']') {
		return twins, d.end()
	}
	for {
		t := d.twin()
		if t == nil {
			return nil, false
		}
		twins = append(twins, t)
		d.space()
		if d.take(']') {
			return twins, d.end()
		}
		if !d.take(',') {
			return nil, false
		}
	}
}

type twinDecoder struct {
	b []byte
	i int
}

func (d *twinDecoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// take consumes c if it is next.
func (d *twinDecoder) take(c byte) bool {
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// end reports whether nothing but white space is left.
func (d *twinDecoder) end() bool {
	d.space()
	return d.i == len(d.b)
}

// literal consumes word ("null", "true", "false") if it is next.
func (d *twinDecoder) literal(word string) bool {
	if len(d.b)-d.i >= len(word) && string(d.b[d.i:d.i+len(word)]) == word {
		d.i += len(word)
		return true
	}
	return false
}

// twin decodes one twin object, or returns nil.
func (d *twinDecoder) twin() *iothub.Twin {
	// The members of a twin, as iothub.Twin names them: its strings
	// first, in the order of strs below.
	twinFields := [...]string{"deviceId", "moduleId", "etag", "deviceEtag", "status", "statusReason",
		"statusUpdateTime", "connectionState", "lastActivityTime", "authenticationType",
		"version", "cloudToDeviceMessageCount", "tags", "properties", "capabilities", "x509Thumbprint"}
	d.space()
	t := &iothub.Twin{}
	strs := [...]*string{&t.DeviceID, &t.ModuleID, &t.ETag, &t.DeviceETag, &t.Status, &t.StatusReason,
		&t.StatusUpdateTime, &t.ConnectionState, &t.LastActivityTime, &t.AuthenticationType}
	ok := d.fieldsOf(twinFields[:], func(f int) bool {
		if f < len(strs) {
			return d.stringField(strs[f])
		}
		switch twinFields[f] {
		case "version":
			return d.intField(&t.Version, 64)
		case "cloudToDeviceMessageCount":
			var n int64
			ok := d.intField(&n, strconv.IntSize)
			t.CloudToDeviceMessageCount = int(n)
			return ok
		case "tags":
			return d.mapField(&t.Tags)
		case "properties":
			return d.properties(&t.Properties)
		case "capabilities":
			return d.capabilities(&t.Capabilities)
		default: // x509Thumbprint
			return d.thumbprint(&t.X509Thumbprint)
		}
	})
	if !ok {
		return nil
	}
	return t
}

// fieldIndex is the index of key among fields; -1 when no field claims
// it. A key that matches a field only when case is ignored is left to
// encoding/json, whose folding rules decide.
func fieldIndex(key string, fields []string) int {
	for i, f := range fields {
		if key == f {
			return i
		}
	}
	for _, f := range fields {
		if strings.EqualFold(key, f) {
			return -2
		}
	}
	return -1
}

// members walks an object's members, calling member with each key while
// positioned at its value; it reports whether the object was well formed
// and every member call succeeded. A null is not an object here.
func (d *twinDecoder) members(member func(key string) bool) bool {
	d.space()
	if !d.take('{') {
		return false
	}
	d.space()
	if d.take('}') {
		return true
	}
	for {
		d.space()
		key, ok := d.str()
		if !ok {
			return false
		}
		d.space()
		if !d.take(':') {
			return false
		}
		d.space()
		if !member(key) {
			return false
		}
		d.space()
		if d.take('}') {
			return true
		}
		if !d.take(',') {
			return false
		}
	}
}

// fieldsOf is members for a struct with the given fields (at most 64),
// calling set with the index of each field's member. A member no field
// claims is passed over, as encoding/json ignores it.
func (d *twinDecoder) fieldsOf(fields []string, set func(f int) bool) bool {
	var seen uint64
	return d.members(func(key string) bool {
		f := fieldIndex(key, fields)
		switch {
		case f == -1:
			return d.skip()
		case f < 0 || seen&(1<<f) != 0:
			return false
		}
		seen |= 1 << f
		return set(f)
	})
}

// memberOf is fieldsOf by field name, where a null leaves the struct as
// it is.
func (d *twinDecoder) memberOf(fields []string, set func(field string) bool) bool {
	if d.literal("null") {
		return true
	}
	return d.fieldsOf(fields, func(f int) bool { return set(fields[f]) })
}

func (d *twinDecoder) properties(p *iothub.TwinProperties) bool {
	return d.memberOf([]string{"desired", "reported"}, func(field string) bool {
		if field == "desired" {
			return d.mapField(&p.Desired)
		}
		return d.mapField(&p.Reported)
	})
}

func (d *twinDecoder) capabilities(c **iothub.Capabilities) bool {
	if d.literal("null") {
		*c = nil
		return true
	}
	v := &iothub.Capabilities{}
	*c = v
	return d.memberOf([]string{"iotEdge"}, func(string) bool {
		switch {
		case d.literal("true"):
			v.IotEdge = true
		case d.literal("false"):
			v.IotEdge = false
		default:
			return d.literal("null")
		}
		return true
	})
}

func (d *twinDecoder) thumbprint(x **iothub.X509Thumbprint) bool {
	if d.literal("null") {
		*x = nil
		return true
	}
	v := &iothub.X509Thumbprint{}
	*x = v
	return d.memberOf([]string{"primaryThumbprint", "secondaryThumbprint"}, func(field string) bool {
		p := &v.PrimaryThumbprint
		if field == "secondaryThumbprint" {
			p = &v.SecondaryThumbprint
		}
		if d.literal("null") {
			*p = nil
			return true
		}
		s, ok := d.str()
		*p = &s
		return ok
	})
}

// stringField decodes a string, or null, which leaves *p as it is.
func (d *twinDecoder) stringField(p *string) bool {
	if d.literal("null") {
		return true
	}
	s, ok := d.str()
	*p = s
	return ok
}

// intField decodes an integer of the given bit size, or null.
func (d *twinDecoder) intField(p *int64, bits int) bool {
	if d.literal("null") {
		return true
	}
	start := d.i
	if !d.number() {
		return false
	}
	n, err := strconv.ParseInt(string(d.b[start:d.i]), 10, bits)
	*p = n
	return err == nil
}

// mapField decodes an object into a new map, or null into nil.
func (d *twinDecoder) mapField(p *map[string]any) bool {
	if d.literal("null") {
		*p = nil
		return true
	}
	m, ok := d.object()
	*p = m
	return ok
}

// object decodes an object into a new map.
func (d *twinDecoder) object() (map[string]any, bool) {
	m := map[string]any{}
	ok := d.members(func(key string) bool {
		v, ok := d.value()
		m[key] = v
		return ok
	})
	return m, ok
}

// value decodes any JSON value as encoding/json does into an any.
func (d *twinDecoder) value() (any, bool) {
	if d.i >= len(d.b) {
		return nil, false
	}
	switch c := d.b[d.i]; {
	case c == '{':
		return d.object()
	case c == '[':
		d.i++
		list := []any{}
		d.space()
		if d.take(']') {
			return list, true
		}
		for {
			d.space()
			v, ok := d.value()
			if !ok {
				return nil, false
			}
			list = append(list, v)
			d.space()
			if d.take(']') {
				return list, true
			}
			if !d.take(',') {
				return nil, false
			}
		}
	case c == '"':
		return d.str()
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	default:
		start := d.i
		if !d.number() {
			return nil, false
		}
		f, err := strconv.ParseFloat(string(d.b[start:d.i]), 64)
		return f, err == nil
	}
}

// skip passes over a value that no field claims, checking it.
func (d *twinDecoder) skip() bool {
	_, ok := d.value()
	return ok
}

// number passes over a number in JSON's grammar.
func (d *twinDecoder) number() bool {
	digits := func() int {
		n := 0
		for d.i < len(d.b) && '0' <= d.b[d.i] && d.b[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	d.take('-')
	switch {
	case d.take('0'):
	case digits() == 0:
		return false
	}
	if d.take('.') && digits() == 0 {
		return false
	}
	if d.take('e') || d.take('E') {
		if !d.take('+') {
			d.take('-')
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}

// str decodes a string: valid UTF-8 with no escapes other than \" \\ \/
// \b \f \n \r \t and \u outside the surrogates.
func (d *twinDecoder) str() (string, bool) {
	if !d.take('"') {
		return "", false
	}
	start := d.i
	ascii := true
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			s := d.b[start:d.i]
			d.i++
			if !ascii && !utf8.Valid(s) {
				return "", false
			}
			if c, ok := common(s); ok {
				return c, true
			}
			return string(s), true
		case c == '\\':
			return d.escaped(start)
		case c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
		d.i++
	}
	return "", false
}

// escaped finishes a string that started at start and has an escape at
// d.i.
func (d *twinDecoder) escaped(start int) (string, bool) {
	out := append([]byte(nil), d.b[start:d.i]...)
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			if !utf8.Valid(out) {
				return "", false
			}
			return string(out), true
		case c < 0x20:
			return "", false
		case c != '\\':
			out = append(out, c)
			d.i++
			continue
		}
		if d.i+1 >= len(d.b) {
			return "", false
		}
		e := d.b[d.i+1]
		d.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			if d.i+4 > len(d.b) {
				return "", false
			}
			r, err := strconv.ParseUint(string(d.b[d.i:d.i+4]), 16, 32)
			if err != nil || (0xD800 <= r && r < 0xE000) {
				return "", false
			}
			out = utf8.AppendRune(out, rune(r))
			d.i += 4
		default:
			return "", false
		}
	}
	return "", false
}

// common returns the strings that every twin repeats without allocating
// them again.
func common(s []byte) (string, bool) {
	switch string(s) {
	case "$metadata":
		return "$metadata", true
	case "$lastUpdated":
		return "$lastUpdated", true
	case "$lastUpdatedVersion":
		return "$lastUpdatedVersion", true
	case "$version":
		return "$version", true
	case "Connected":
		return "Connected", true
	case "Disconnected":
		return "Disconnected", true
	case "enabled":
		return "enabled", true
	case "sas":
		return "sas", true
	}
	return "", false
}
