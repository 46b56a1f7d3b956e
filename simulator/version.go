package simulator

import (
	"net/url"
	"path"
	"regexp"
)

// DefaultVersionPattern is the rule that turns a firmware package URI into
// the fwVersion a device reports after installing it: the last run of
// dot-separated numbers in the URI's file name, so
// "https://fw.example.com/edge-2.1.0.bin" gives "2.1.0" and
// ".../firmware/v3.2.bin" gives "3.2". A fleet file may set its own pattern
// (firmware.version_pattern); its first capture group, or the whole match
// when it has none, is the version.
const DefaultVersionPattern = `[0-9]+(?:\.[0-9]+)+`

// VersionFromURI applies pattern to the file name of uri (the last path
// segment, without query or fragment) and returns the version, or "" and
// false when the pattern does not match. The last match wins, so a name such
// as "image-2024.05-1.2.3.bin" gives "1.2.3".
func VersionFromURI(pattern *regexp.Regexp, uri string) (string, bool) {
	name := uri
	if u, err := url.Parse(uri); err == nil && u.Path != "" {
		name = u.Path
	}
	name = path.Base(name)
	ms := pattern.FindAllStringSubmatch(name, -1)
	if len(ms) == 0 {
		return "", false
	}
	m := ms[len(ms)-1]
	if len(m) > 1 && m[1] != "" {
		return m[1], true
	}
	return m[0], true
}
