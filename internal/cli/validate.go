package cli

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"fermion.dev/fermion/internal/diag"
	"fermion.dev/fermion/internal/manifest"
)

// The checks here run on flags and arguments before anything slow (a build, a push, a
// listener) so a typo costs a second, not a build.

// checkListen reports a listen address net.Listen would refuse, with the fix. An empty
// address is left to the caller (it means "off" for the admin flags).
func checkListen(flag, addr string) error {
	if addr == "" {
		return nil
	}
	if _, err := strconv.ParseUint(addr, 10, 16); err == nil {
		return usageError{fmt.Errorf("--%s %s: an address needs a host part: use :%s (every interface) or 127.0.0.1:%s (this machine only)", flag, addr, addr, addr)}
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		msg := err.Error()
		if errors.As(err, &ae) {
			msg = ae.Err
		}
		return usageError{fmt.Errorf("--%s %q: %s; want host:port, such as 127.0.0.1:8080 or :8080", flag, addr, msg)}
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n > 65535 {
		return usageError{fmt.Errorf("--%s %q: port %q is not a number from 0 to 65535 (0: any free port)", flag, addr, port)}
	}
	return nil
}

// checkListens runs checkListen on flag/address pairs.
func checkListens(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if err := checkListen(pairs[i], pairs[i+1]); err != nil {
			return err
		}
	}
	return nil
}

// looksLikePath tells a TARGET meant as a file or directory from an image reference:
// references never start with a dot, a slash or a tilde.
func looksLikePath(target string) bool {
	return strings.HasPrefix(target, ".") || strings.HasPrefix(target, "/") || strings.HasPrefix(target, "~") ||
		strings.HasSuffix(target, ".toml") || filepath.IsAbs(target)
}

// checkFunctionDir reports a function directory (or manifest file) that is missing or
// holds no manifest, with what to do, before anything is built.
func checkFunctionDir(target string) error {
	fi, err := os.Stat(target)
	if errors.Is(err, os.ErrNotExist) {
		return usageError{fmt.Errorf("%s does not exist: give a function directory holding %s (fermion new NAME creates one)", target, manifest.FileName)}
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", target, err)
	}
	if !fi.IsDir() {
		return nil
	}
	if _, err := os.Stat(filepath.Join(target, manifest.FileName)); errors.Is(err, os.ErrNotExist) {
		return usageError{fmt.Errorf("directory %s has no %s: run fermion new NAME to create a function, or give the directory that holds %s", target, manifest.FileName, manifest.FileName)}
	}
	return nil
}

// didYouMean is " (did you mean X?)" when a candidate is near word, else "".
func didYouMean(word string, candidates []string) string {
	if c := diag.Closest(word, candidates); c != "" {
		return fmt.Sprintf(" (did you mean %s?)", c)
	}
	return ""
}

// sortedKeys is the sorted keys of a set.
func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
