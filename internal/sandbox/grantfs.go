package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/sys"

	"fermion.dev/fermion/internal/manifest"
)

// A files grant (capabilities.files) is served by grantFS, not by wazero's DirFS: DirFS
// joins the guest's path to the host directory and lets the host follow any symbolic
// link it meets, so a link in the grant to /etc/passwd or to / hands the guest the host.
//
// grantFS resolves every path beneath the grant's root. On Linux the kernel does it
// (openat2 with RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS, grantfs_linux.go); elsewhere, and on
// kernels without openat2, os.Root does, walking one component at a time. Either way a
// symbolic link — absolute or relative, file or directory, in any component, chained —
// that leads out of the root fails like "..", with EPERM; links that stay inside work.
//
// Only directories and regular files are served: opening a named pipe would block the
// host thread, and a device is never part of a grant. A regular file with more than one
// hard link is refused (EACCES): a hard link made inside the grant to a file outside it
// cannot be told apart from that file by any path, so a shared inode is never trusted.
// The manifest check (manifest.CheckGrants) refuses the same things before deployment,
// so a well-formed app never meets these errors.
//
// The root is opened once, when the function loads, and closed with it: the grant is
// the directory that was checked, even if its path is later replaced.

// resolver opens names beneath one root directory. Names are slash-separated, relative
// and cleaned ("." is the root); escaping the root is an error, never a fallback.
type resolver interface {
	// open opens name for reading. With nofollow, a symbolic link as the last component
	// is an error (ELOOP) rather than followed.
	open(name string, nofollow, dir bool) (*os.File, error)
	// stat describes name, following a final symbolic link unless nofollow.
	stat(name string, nofollow bool) (fs.FileInfo, error)
	// readlink returns the target of the symbolic link name, as written.
	readlink(name string) (string, error)
	close() error
}

// openGrant opens the grant's root directory, refusing a source that is a symbolic link
// itself: the manifest check refuses links in the source path, and a link swapped in
// after that check must not widen the grant.
func openGrant(source, dest string) (*grantFS, error) {
	fi, err := os.Lstat(source)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("files grant %s: source %s does not exist; create the directory or fix capabilities.files", dest, source)
	case err != nil:
		return nil, fmt.Errorf("files grant %s: %w", dest, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		target, _ := os.Readlink(source)
		return nil, fmt.Errorf("files grant %s: source %s is a symbolic link to %s; a grant must be a real directory, so point source at the directory itself", dest, source, target)
	case !fi.IsDir():
		return nil, fmt.Errorf("files grant %s: source %s is not a directory; a grant mounts a directory", dest, source)
	}
	r, err := newResolver(source)
	if err != nil {
		return nil, fmt.Errorf("files grant %s: open %s: %w", dest, source, err)
	}
	return &grantFS{dir: source, r: r}, nil
}

// grantMount is one files grant of a function: its root and where the guest sees it.
type grantMount struct {
	fs   *grantFS
	dest string
}

// openGrants opens every grant's root; on failure none stays open.
func openGrants(files []manifest.Mount) ([]grantMount, error) {
	var out []grantMount
	for _, m := range files {
		g, err := openGrant(m.Source, m.Destination)
		if err != nil {
			closeGrants(out)
			return nil, err
		}
		out = append(out, grantMount{fs: g, dest: m.Destination})
	}
	return out, nil
}

// closeGrants closes the roots once no instance can use them (Function.Close, or a
// failed load).
func closeGrants(gs []grantMount) {
	for _, g := range gs {
		g.fs.close()
	}
}

// grantFS is a read-only experimentalsys.FS over one grant. It is safe for concurrent
// use: every instance of a function shares it.
type grantFS struct {
	experimentalsys.UnimplementedFS
	dir string // the host directory, for String
	r   resolver
}

func (g *grantFS) String() string { return g.dir }

func (g *grantFS) close() error { return g.r.close() }

// guestName turns wazero's path ("", ".", "/" or a relative path, perhaps with a
// trailing slash that asks for a directory) into a resolver name. A path that climbs
// above the root lexically is refused here (wazero refuses most already); one that
// climbs through links is the resolver's to refuse.
func guestName(p string) (name string, dir bool, errno experimentalsys.Errno) {
	dir = len(p) > 1 && p[len(p)-1] == '/'
	switch c := path.Clean(strings.TrimLeft(p, "/")); {
	case c == "" || c == ".":
		return ".", true, 0
	case c == ".." || strings.HasPrefix(c, "../"):
		return "", false, experimentalsys.EPERM
	default:
		return c, dir, 0
	}
}

// OpenFile implements experimentalsys.FS. Anything that could write is refused.
func (g *grantFS) OpenFile(p string, flag experimentalsys.Oflag, _ fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	const write = experimentalsys.O_WRONLY | experimentalsys.O_RDWR | experimentalsys.O_CREAT |
		experimentalsys.O_TRUNC | experimentalsys.O_APPEND
	if flag&write != 0 {
		return nil, experimentalsys.EROFS
	}
	name, dir, errno := guestName(p)
	if errno != 0 {
		return nil, errno
	}
	f, errno := g.open(name, flag&experimentalsys.O_NOFOLLOW != 0, dir || flag&experimentalsys.O_DIRECTORY != 0)
	if errno != 0 {
		return nil, errno
	}
	isDir := f.st.Mode.IsDir()
	af, errno := (&sysfs.AdaptFS{FS: &openedFS{g: g, first: f.File}}).OpenFile(name, experimentalsys.O_RDONLY, 0)
	if errno != 0 {
		f.Close()
		return nil, errno
	}
	return &grantFile{File: af, dir: isDir}, 0
}

// checkedFile is a resolved file that passed servable.
type checkedFile struct {
	*os.File
	st sys.Stat_t
}

// open resolves name and refuses what the grant does not serve.
func (g *grantFS) open(name string, nofollow, dir bool) (checkedFile, experimentalsys.Errno) {
	f, err := g.r.open(name, nofollow, dir)
	if err != nil {
		return checkedFile{}, errnoOf(err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return checkedFile{}, errnoOf(err)
	}
	st := sys.NewStat_t(fi)
	if errno := servable(st); errno != 0 {
		f.Close()
		return checkedFile{}, errno
	}
	return checkedFile{File: f, st: st}, 0
}

// servable refuses what a grant never serves: anything but directories and regular
// files (and, for Lstat, symbolic links), and regular files with other hard links.
func servable(st sys.Stat_t) experimentalsys.Errno {
	switch t := st.Mode.Type(); {
	case t == 0:
		if st.Nlink > 1 {
			return experimentalsys.EACCES
		}
		return 0
	case t == fs.ModeDir, t == fs.ModeSymlink:
		return 0
	default:
		return experimentalsys.EACCES
	}
}

func (g *grantFS) statOf(p string, nofollow bool) (sys.Stat_t, experimentalsys.Errno) {
	name, dir, errno := guestName(p)
	if errno != 0 {
		return sys.Stat_t{}, errno
	}
	fi, err := g.r.stat(name, nofollow)
	if err != nil {
		return sys.Stat_t{}, errnoOf(err)
	}
	st := sys.NewStat_t(fi)
	if dir && !st.Mode.IsDir() {
		return sys.Stat_t{}, experimentalsys.ENOTDIR
	}
	if errno := servable(st); errno != 0 {
		return sys.Stat_t{}, errno
	}
	return st, 0
}

// Stat implements experimentalsys.FS.
func (g *grantFS) Stat(p string) (sys.Stat_t, experimentalsys.Errno) { return g.statOf(p, false) }

// Lstat implements experimentalsys.FS.
func (g *grantFS) Lstat(p string) (sys.Stat_t, experimentalsys.Errno) { return g.statOf(p, true) }

// Readlink implements experimentalsys.FS. It reveals a link's text, which is part of
// the grant's content; following the link is what the resolver guards.
func (g *grantFS) Readlink(p string) (string, experimentalsys.Errno) {
	name, _, errno := guestName(p)
	if errno != 0 {
		return "", errno
	}
	target, err := g.r.readlink(name)
	if err != nil {
		return "", errnoOf(err)
	}
	return target, 0
}

// The writing operations of experimentalsys.FS: a grant is read-only.

func (g *grantFS) Mkdir(string, fs.FileMode) experimentalsys.Errno    { return experimentalsys.EROFS }
func (g *grantFS) Chmod(string, fs.FileMode) experimentalsys.Errno    { return experimentalsys.EROFS }
func (g *grantFS) Rename(string, string) experimentalsys.Errno        { return experimentalsys.EROFS }
func (g *grantFS) Rmdir(string) experimentalsys.Errno                 { return experimentalsys.EROFS }
func (g *grantFS) Unlink(string) experimentalsys.Errno                { return experimentalsys.EROFS }
func (g *grantFS) Link(string, string) experimentalsys.Errno          { return experimentalsys.EROFS }
func (g *grantFS) Symlink(string, string) experimentalsys.Errno       { return experimentalsys.EROFS }
func (g *grantFS) Utimens(string, int64, int64) experimentalsys.Errno { return experimentalsys.EROFS }

// errnoOf maps a resolver's error to what the guest sees. An escape (EXDEV from
// openat2, os.Root's own error) reads as EPERM, as ".." does in wazero; an error this
// does not know denies rather than guesses.
func errnoOf(err error) experimentalsys.Errno {
	var errno syscall.Errno
	switch {
	case errors.Is(err, syscall.EXDEV):
		return experimentalsys.EPERM
	case errors.As(err, &errno):
		return experimentalsys.UnwrapOSError(errno)
	case errors.Is(err, fs.ErrNotExist):
		return experimentalsys.ENOENT
	case errors.Is(err, fs.ErrClosed):
		return experimentalsys.EBADF
	default:
		return experimentalsys.EPERM
	}
}

// grantFile is one open file or directory of a grant, read-only. Reading, seeking and
// listing are wazero's own adapter over the *os.File the grant resolved (declaring Seek
// here would clash with io.Seeker's signature); what could write is refused here.
type grantFile struct {
	experimentalsys.File
	dir bool
}

// openedFS is the fs.FS behind that adapter: it hands over the file the grant already
// resolved and checked, and resolves again, with the same checks, when the adapter
// reopens a directory to rewind its listing. wazero uses a File from one goroutine at
// a time.
type openedFS struct {
	g     *grantFS
	first *os.File
}

func (o *openedFS) Open(name string) (fs.File, error) {
	if f := o.first; f != nil {
		o.first = nil
		return f, nil
	}
	f, errno := o.g.open(name, false, true)
	if errno != 0 {
		return nil, errno
	}
	return f.File, nil
}

func (f *grantFile) writeErr() experimentalsys.Errno {
	if f.dir {
		return experimentalsys.EISDIR
	}
	return experimentalsys.EBADF
}

// SetAppend implements experimentalsys.File: appending is writing.
func (f *grantFile) SetAppend(enable bool) experimentalsys.Errno {
	if enable {
		return experimentalsys.EBADF
	}
	return 0
}

// Write implements experimentalsys.File: a grant is read-only.
func (f *grantFile) Write([]byte) (int, experimentalsys.Errno) { return 0, f.writeErr() }

// Pwrite implements experimentalsys.File.
func (f *grantFile) Pwrite([]byte, int64) (int, experimentalsys.Errno) { return 0, f.writeErr() }

// Truncate implements experimentalsys.File.
func (f *grantFile) Truncate(int64) experimentalsys.Errno { return f.writeErr() }

// Sync implements experimentalsys.File.
func (f *grantFile) Sync() experimentalsys.Errno { return experimentalsys.EBADF }

// Datasync implements experimentalsys.File.
func (f *grantFile) Datasync() experimentalsys.Errno { return experimentalsys.EBADF }

// Utimens implements experimentalsys.File.
func (f *grantFile) Utimens(int64, int64) experimentalsys.Errno { return experimentalsys.EBADF }

// rootResolver resolves with os.Root, which walks the name one component at a time and
// refuses any step (a "..", an absolute or escaping symbolic link) that leaves the root.
type rootResolver struct{ root *os.Root }

func newRootResolver(dir string) (resolver, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return rootResolver{r}, nil
}

func (r rootResolver) open(name string, nofollow, dir bool) (*os.File, error) {
	// Look before opening: opening a named pipe would block until a writer came.
	var fi fs.FileInfo
	var err error
	if nofollow {
		fi, err = r.root.Lstat(name)
	} else {
		fi, err = r.root.Stat(name)
	}
	switch {
	case err != nil:
		return nil, err
	case fi.Mode()&fs.ModeSymlink != 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.ELOOP}
	case dir && !fi.IsDir():
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.ENOTDIR}
	case !fi.IsDir() && !fi.Mode().IsRegular():
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EACCES}
	}
	return r.root.Open(name)
}

func (r rootResolver) stat(name string, nofollow bool) (fs.FileInfo, error) {
	if nofollow {
		return r.root.Lstat(name)
	}
	return r.root.Stat(name)
}

func (r rootResolver) readlink(name string) (string, error) { return r.root.Readlink(name) }

func (r rootResolver) close() error { return r.root.Close() }
