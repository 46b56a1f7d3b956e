package state

// redacted replaces secret values the store finds in text it is given.
const redacted = "REDACTED"

// secretKeys are the markers after which a value is a secret: the key of an
// IoT Hub connection string, and the signature of a SAS token or of a SAS
// URL (a firmware image on blob storage, say). The runner redacts variables
// before they reach the store; this is the net under that, so that a key
// quoted in a device's error message or a payload is not written either.
var secretKeys = []string{"sharedaccesskey=", "sig="}

// redactSecrets returns s with the value after each secret marker (matched
// without regard to ASCII case) replaced by REDACTED. The value ends at the
// next ';', '&', quote, whitespace or the end of s.
func redactSecrets(s string) string {
	if !mayHoldSecret(s) {
		return s
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		key := matchKeyAt(s, i)
		if key == 0 {
			out = append(out, s[i])
			i++
			continue
		}
		out = append(out, s[i:i+key]...)
		i += key
		j := i
		for j < len(s) && !endsSecret(s[j]) {
			j++
		}
		if j > i {
			out = append(out, redacted...)
		}
		i = j
	}
	return string(out)
}

func mayHoldSecret(s string) bool {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '=' {
			return true
		}
	}
	return false
}

// matchKeyAt returns the length of the secret marker starting at s[i], or 0.
func matchKeyAt(s string, i int) int {
	for _, k := range secretKeys {
		if len(s)-i < len(k) {
			continue
		}
		if i > 0 && isWordByte(s[i-1]) {
			// "xsig=" is not a signature; "?sig=", "&sig=" and "sig=" are.
			continue
		}
		ok := true
		for j := 0; j < len(k); j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != k[j] {
				ok = false
				break
			}
		}
		if ok {
			return len(k)
		}
	}
	return 0
}

func isWordByte(c byte) bool {
	return c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')
}

func endsSecret(c byte) bool {
	switch c {
	case ';', '&', '"', '\'', ' ', '\t', '\n', '\r', '\\', ',', '}':
		return true
	}
	return false
}
