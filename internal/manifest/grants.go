package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/diag"
)

// What a files grant may hold, checked on disk by CheckGrants (Parse cannot: it reads
// no files). The sandbox enforces the same rules on every open (internal/sandbox,
// grantfs.go); refusing them here turns a guest's puzzling EPERM into a message at
// build time that names the offending file.
//
//   - The source path, from the manifest's directory down, holds no symbolic link: the
//     grant is exactly the directory named, never wherever a link points today.
//   - Symbolic links inside the grant are relative and resolve, at every step of every
//     chain, beneath the grant. An absolute link is refused even when it points inside:
//     the sandbox resolves beneath the grant's root, where an absolute target escapes.
//   - No regular file has more than one hard link: a hard link to a file outside the
//     grant is the same inode as that file, and no path tells them apart.
//   - Only directories, regular files and those links: no pipes, sockets or devices.
//
// A source that does not exist yet is not a problem here (the build command may create
// it); the sandbox refuses to load a function whose grant is missing.

// maxLinkHops bounds the links followed to resolve one name, as the kernel's 40 does.
const maxLinkHops = 40

// maxGrantProblems bounds the problems reported per grant, so a vendored tree full of
// links yields a readable message.
const maxGrantProblems = 20

// CheckGrants checks every files grant of m on disk and returns an *Error listing what
// they hold that the sandbox would refuse, or nil. Load calls it; `fermion build` calls
// it again after the build command, which may have written into a grant. It needs the
// absolute paths Load gives; a manifest parsed without a directory is not checked.
func CheckGrants(m *Manifest) error {
	if m == nil || !filepath.IsAbs(m.Dir) || len(m.Capabilities.Files) == 0 {
		return nil
	}
	var idx map[string]position
	// Path is as the caller gave it (perhaps relative to another working directory);
	// Dir is its absolute directory.
	if data, err := os.ReadFile(filepath.Join(m.Dir, filepath.Base(m.Path))); err == nil {
		idx = indexKeys(string(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))))
	}
	return checkGrants(m, idx)
}

func checkGrants(m *Manifest, idx map[string]position) error {
	if !filepath.IsAbs(m.Dir) {
		return nil
	}
	var probs []Problem
	for i, g := range m.Capabilities.Files {
		field := joinPath(indexPath("capabilities.files", i), "source")
		line := 0
		if p, ok := idx[field]; ok {
			line = p.line
		}
		for _, msg := range checkGrant(m.Dir, m.abs(g.Source)) {
			probs = append(probs, Problem{File: m.Path, Line: line, Field: field, Msg: msg})
		}
	}
	if len(probs) == 0 {
		return nil
	}
	diag.Sort(probs)
	return &Error{Problems: probs}
}

// checkGrant returns what is wrong with the grant at source, a directory beneath dir.
func checkGrant(dir, source string) []string {
	rel, err := filepath.Rel(dir, source)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return []string{fmt.Sprintf("%s is not inside the manifest's directory %s", source, dir)}
	}
	// The source path itself: every component from the manifest's directory down.
	cur := dir
	if rel != "." {
		for _, c := range strings.Split(rel, string(filepath.Separator)) {
			cur = filepath.Join(cur, c)
			fi, err := os.Lstat(cur)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				return nil
			case err != nil:
				return []string{fmt.Sprintf("cannot check %s: %v", cur, err)}
			case fi.Mode()&fs.ModeSymlink != 0:
				target, _ := os.Readlink(cur)
				where := "to " + quoteShort(target)
				if out := leadsOut(dir, cur, target); out {
					where += ", outside the manifest's directory"
				}
				return []string{fmt.Sprintf("%s is a symbolic link %s; a grant must be a real directory, never a link: "+
					"point source at the directory itself (or replace the link with it)", relOrAbs(dir, cur), where)}
			}
		}
	}
	if fi, err := os.Stat(source); err == nil && !fi.IsDir() {
		return []string{fmt.Sprintf("%s is a file; a grant mounts a directory, so point source at the directory that holds it", relOrAbs(dir, source))}
	}

	var msgs []string
	more := 0
	report := func(format string, args ...any) {
		if len(msgs) < maxGrantProblems {
			msgs = append(msgs, fmt.Sprintf(format, args...))
		} else {
			more++
		}
	}
	filepath.WalkDir(source, func(p string, d fs.DirEntry, err error) error {
		name := relOrAbs(dir, p)
		if err != nil {
			report("cannot read %s: %v; make it readable or remove it from the grant", name, err)
			return nil
		}
		switch t := d.Type(); {
		case t&fs.ModeSymlink != 0:
			if msg := checkLink(source, p); msg != "" {
				report("%s %s", name, msg)
			}
		case t.IsDir():
		case t.IsRegular():
			fi, err := d.Info()
			if err != nil {
				report("cannot check %s: %v", name, err)
			} else if n := linkCount(fi); n > 1 {
				report("%s has %d hard links; the sandbox refuses such files, since a hard link to a file outside "+
					"the grant cannot be told from it: copy the file instead of linking it (cp, not ln)", name, n)
			}
		default:
			report("%s is a %s; a grant may hold only directories, regular files and links that stay inside it: remove it",
				name, kindOf(t))
		}
		return nil
	})
	if more > 0 {
		msgs = append(msgs, fmt.Sprintf("and %s like these in %s", v1.Count(more, "more problem"), relOrAbs(dir, source)))
	}
	return msgs
}

// checkLink describes what is wrong with the symbolic link at p inside the grant at
// root, or returns "".
func checkLink(root, p string) string {
	target, err := os.Readlink(p)
	if err != nil {
		return fmt.Sprintf("cannot be read: %v", err)
	}
	if filepath.IsAbs(target) || path.IsAbs(filepath.ToSlash(target)) {
		return fmt.Sprintf("is a symbolic link to the absolute path %s; links in a grant must be relative and stay inside it: "+
			"make it relative, or copy what it points to into the grant", quoteShort(target))
	}
	rel, err := filepath.Rel(root, p)
	if err != nil {
		return fmt.Sprintf("cannot be checked: %v", err)
	}
	escapes, err := resolveBeneath(filepath.ToSlash(rel), func(name string) (string, bool, error) {
		return lookupLink(filepath.Join(root, filepath.FromSlash(name)))
	})
	switch {
	case errors.Is(err, errLinkLoop):
		return fmt.Sprintf("is a symbolic link to %s that does not resolve within %d links; break the loop", quoteShort(target), maxLinkHops)
	case err != nil:
		return fmt.Sprintf("is a symbolic link to %s that cannot be checked: %v", quoteShort(target), err)
	case escapes:
		return fmt.Sprintf("is a symbolic link to %s, which leads out of the grant; the guest could read whatever it points to: "+
			"copy the file into the grant or remove the link", quoteShort(target))
	}
	return ""
}

// lookupLink reads one name for resolveBeneath: its link target, if it is a link.
func lookupLink(p string) (target string, isLink bool, err error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return "", false, err
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		return "", false, nil
	}
	target, err = os.Readlink(p)
	return filepath.ToSlash(target), err == nil, err
}

var errLinkLoop = errors.New("too many levels of symbolic links")

// resolveBeneath follows name (slash-separated, relative to a root) one component at a
// time, as the kernel does under RESOLVE_BENEATH, and reports whether the resolution
// leaves the root at any step: a ".." above it, or a link to an absolute path. lookup
// says whether the name so far is a link and to what; a name that does not exist (or
// is not a directory where one is needed) ends the resolution inside the root, since
// the kernel would stop there too. A ".." after a file is counted as a climb, where the
// kernel would stop with ENOTDIR: the check errs on the side of refusing.
func resolveBeneath(name string, lookup func(name string) (target string, isLink bool, err error)) (escapes bool, err error) {
	if path.IsAbs(name) {
		return true, nil
	}
	var done []string                // resolved components, beneath the root
	todo := strings.Split(name, "/") // still to resolve, in order
	hops := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(done) == 0 {
				return true, nil
			}
			done = done[:len(done)-1]
			continue
		}
		target, isLink, err := lookup(strings.Join(append(done, c), "/"))
		switch {
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
			return false, nil
		case err != nil:
			return false, err
		case !isLink:
			done = append(done, c)
			continue
		}
		if hops++; hops > maxLinkHops {
			return false, errLinkLoop
		}
		if path.IsAbs(target) {
			return true, nil
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return false, nil
}

// leadsOut reports whether the link at p, with target, points outside dir, judged by
// its text alone (enough for a message).
func leadsOut(dir, p, target string) bool {
	if !filepath.IsAbs(target) {
		target = filepath.Join(filepath.Dir(p), target)
	}
	rel, err := filepath.Rel(dir, target)
	return err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// relOrAbs names p relative to the manifest's directory, as the user wrote paths.
func relOrAbs(dir, p string) string {
	if rel, err := filepath.Rel(dir, p); err == nil && !strings.HasPrefix(rel, "..") {
		return quoteShort(filepath.ToSlash(rel))
	}
	return quoteShort(p)
}

func kindOf(t fs.FileMode) string {
	switch {
	case t&fs.ModeNamedPipe != 0:
		return "named pipe"
	case t&fs.ModeSocket != 0:
		return "socket"
	case t&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}
