package query

import "strings"

// System property names match case-insensitively (the hub is lenient there),
// while keys under tags and properties.desired/reported are user data and
// match exactly. Paths are rewritten to the canonical spelling when the
// query is compiled, so documents are expected to use the REST spelling and
// evaluation never folds case.

// twinNames lists the system names allowed under parent ("" is the twin
// root) of a device or module twin.
func twinNames(parent string) []string {
	switch parent {
	case "":
		return []string{
			"deviceId", "moduleId", "etag", "deviceEtag", "version", "status", "statusReason",
			"statusUpdateTime", "statusUpdatedTime", "connectionState", "connectionStateUpdatedTime",
			"lastActivityTime", "cloudToDeviceMessageCount", "authenticationType", "x509Thumbprint",
			"modelId", "capabilities", "deviceScope", "parentScopes", "generationId", "tags", "properties",
		}
	case "properties":
		return []string{"desired", "reported"}
	case "desired", "reported":
		return []string{"$metadata", "$version"}
	case "x509Thumbprint":
		return []string{"primaryThumbprint", "secondaryThumbprint"}
	case "capabilities":
		return []string{"iotEdge"}
	}
	return nil
}

// jobNames lists the system names of a device job item (below the
// devices.jobs prefix).
func jobNames(parent string) []string {
	switch parent {
	case "":
		return []string{
			"deviceId", "moduleId", "jobId", "jobType", "status", "startTimeUtc", "endTimeUtc",
			"createdDateTimeUtc", "lastUpdatedDateTimeUtc", "outcome", "error",
		}
	case "outcome":
		return []string{"deviceMethodResponse"}
	case "deviceMethodResponse":
		return []string{"status", "payload"}
	case "error":
		return []string{"code", "description"}
	}
	return nil
}

// canonicalize rewrites the leading system segments of segs to their
// canonical spelling and stops at the first user-data segment.
func canonicalize(segs []pathSeg, names func(parent string) []string) {
	parent := ""
	for i := range segs {
		if segs[i].isIndex {
			return
		}
		found := false
		for _, n := range names(parent) {
			if strings.EqualFold(n, segs[i].name) {
				segs[i].name = n
				found = true
				break
			}
		}
		if !found {
			return
		}
		parent = segs[i].name
		if parent == "tags" {
			return
		}
	}
}
