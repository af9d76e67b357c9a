package sandbox

import (
	"errors"
	"io/fs"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// newResolver resolves with openat2 where the kernel has it (Linux 5.6+), and with
// os.Root where it does not or a seccomp filter hides it.
func newResolver(dir string) (resolver, error) {
	if !openat2Works() {
		return newRootResolver(dir)
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	root := os.NewFile(uintptr(fd), dir)
	conn, err := root.SyscallConn()
	if err != nil {
		root.Close()
		return nil, err
	}
	return &openat2Resolver{root: root, conn: conn}, nil
}

// openat2Works reports whether openat2 can be called: ENOSYS on old kernels, EPERM
// from some sandboxes' seccomp filters. Tests set it to exercise the fallback.
var openat2Works = sync.OnceValue(func() bool {
	fd, err := unix.Openat2(unix.AT_FDCWD, "/", &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC})
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
})

// openat2Resolver has the kernel resolve every name beneath root: RESOLVE_BENEATH fails
// (EXDEV) on any "..", absolute path or symbolic link that would leave it, at any depth
// of a chain, and RESOLVE_NO_MAGICLINKS refuses /proc-style links outright. The lookup
// is one system call, so nothing can change between a check and the open.
type openat2Resolver struct {
	root *os.File
	// conn.Control holds a reference on root's descriptor for the call, so a lookup
	// racing close gets an error, never a reused descriptor number.
	conn syscall.RawConn
}

func (r *openat2Resolver) openat2(name string, flags uint64) (*os.File, error) {
	how := unix.OpenHow{Flags: flags | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS}
	fd := -1
	var err error
	cerr := r.conn.Control(func(root uintptr) {
		// EAGAIN: a rename or mount elsewhere raced the lookup; the kernel asks for a retry.
		for range 16 {
			fd, err = unix.Openat2(int(root), name, &how)
			if err != unix.EAGAIN && err != unix.EINTR {
				break
			}
		}
	})
	if cerr != nil {
		return nil, cerr
	}
	if err != nil {
		return nil, &fs.PathError{Op: "openat2", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}

func (r *openat2Resolver) open(name string, nofollow, dir bool) (*os.File, error) {
	// O_NONBLOCK so that a named pipe cannot block the open; the caller refuses it.
	flags := uint64(unix.O_RDONLY | unix.O_NOCTTY | unix.O_NONBLOCK)
	if nofollow {
		flags |= unix.O_NOFOLLOW
	}
	if dir {
		flags |= unix.O_DIRECTORY
	}
	f, err := r.openat2(name, flags)
	if err != nil {
		return nil, err
	}
	// Regular files and directories ignore O_NONBLOCK, but os.File would try to poll it.
	if err := clearNonblock(f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func clearNonblock(f *os.File) error {
	conn, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := conn.Control(func(fd uintptr) { serr = unix.SetNonblock(int(fd), false) }); err != nil {
		return err
	}
	return serr
}

func (r *openat2Resolver) stat(name string, nofollow bool) (fs.FileInfo, error) {
	flags := uint64(unix.O_PATH)
	if nofollow {
		flags |= unix.O_NOFOLLOW
	}
	f, err := r.openat2(name, flags)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Stat()
}

func (r *openat2Resolver) readlink(name string) (string, error) {
	f, err := r.openat2(name, unix.O_PATH|unix.O_NOFOLLOW)
	if err != nil {
		return "", err
	}
	defer f.Close()
	conn, err := f.SyscallConn()
	if err != nil {
		return "", err
	}
	buf := make([]byte, unix.PathMax)
	n := 0
	var rerr error
	if err := conn.Control(func(fd uintptr) {
		// An empty name reads the link the O_PATH descriptor is: no second lookup.
		n, rerr = unix.Readlinkat(int(fd), "", buf)
	}); err != nil {
		return "", err
	}
	if errors.Is(rerr, unix.ENOENT) {
		rerr = unix.EINVAL // the name is not a link: readlink's own answer
	}
	if rerr != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: rerr}
	}
	return string(buf[:n]), nil
}

func (r *openat2Resolver) close() error { return r.root.Close() }
