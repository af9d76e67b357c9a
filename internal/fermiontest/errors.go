package fermiontest

import "strings"

// RepeatedContext returns the first context an error message names twice ("create
// token" in "create token: create token: timeout"), or "" when each appears once. The
// message's lines are checked separately, split at ": ", so hints on lines of their
// own are free to repeat words.
func RepeatedContext(msg string) string {
	for line := range strings.SplitSeq(msg, "\n") {
		seen := map[string]bool{}
		for part := range strings.SplitSeq(line, ": ") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			if seen[part] {
				return part
			}
			seen[part] = true
		}
	}
	return ""
}
