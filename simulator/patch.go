package simulator

import "maps"

// mergePatch returns a JSON merge patch equivalent to applying older then
// newer: members of newer win, objects present in both are merged member by
// member, and nil (delete) members are kept as they are. Neither input is
// modified.
func mergePatch(older, newer map[string]any) map[string]any {
	if older == nil && newer == nil {
		return nil
	}
	out := make(map[string]any, len(older)+len(newer))
	maps.Copy(out, older)
	for k, v := range newer {
		nv, nok := v.(map[string]any)
		ov, ook := out[k].(map[string]any)
		if nok && ook {
			out[k] = mergePatch(ov, nv)
			continue
		}
		out[k] = v
	}
	return out
}

// replacePatch returns the merge patch that turns from into to: to's
// members, plus nil for every member of from that to lacks, at every depth.
// A nil to deletes the whole value.
func replacePatch(from, to map[string]any) any {
	if to == nil {
		return nil
	}
	out := make(map[string]any, len(to)+len(from))
	for k, v := range to {
		if tv, ok := v.(map[string]any); ok {
			if fv, ok := from[k].(map[string]any); ok {
				out[k] = replacePatch(fv, tv)
				continue
			}
		}
		out[k] = v
	}
	for k := range from {
		if _, ok := to[k]; !ok {
			out[k] = nil
		}
	}
	return out
}
