package scheduler

// Diff is what a reconciler does to go from the nodes in current to those in desired:
// add holds the names in desired but not in current, remove those in current but not in
// desired, each in its input's order and without repeats. Both are nil when nothing
// changes.
func Diff(current, desired []string) (add, remove []string) {
	cur := make(map[string]bool, len(current))
	for _, n := range current {
		cur[n] = true
	}
	want := make(map[string]bool, len(desired))
	for _, n := range desired {
		if !want[n] && !cur[n] {
			add = append(add, n)
		}
		want[n] = true
	}
	for _, n := range current {
		if !want[n] {
			remove = append(remove, n)
			want[n] = true // report a repeated name once
		}
	}
	return add, remove
}
