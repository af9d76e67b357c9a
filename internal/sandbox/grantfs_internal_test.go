package sandbox

import (
	"crypto/rand"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

// HostileTree is a files grant laid out the way a hostile project would: links of every
// kind that lead out of it, a hard link to a file outside, and a few well-behaved files.
type HostileTree struct {
	Grant   string // the directory to grant
	Outside string // a directory beside it, with Secret in secret.txt and dir/passwd
	Secret  string // the outside files' content; it must never reach a guest
	Inside  string // the content of hello.txt in the grant
}

// NewHostileTree builds a HostileTree under t.TempDir(). It is exported for the
// hostile-guest tests of package sandbox_test.
func NewHostileTree(t testing.TB) HostileTree {
	t.Helper()
	tmp := t.TempDir()
	h := HostileTree{
		Grant:   filepath.Join(tmp, "app", "static"),
		Outside: filepath.Join(tmp, "outside"),
		Secret:  "OUTSIDE-SECRET-" + rand.Text(),
		Inside:  "served from the grant",
	}
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, name string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(h.Grant, name)); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(h.Outside, "secret.txt"), h.Secret)
	write(filepath.Join(h.Outside, "dir", "passwd"), h.Secret)
	write(filepath.Join(h.Grant, "hello.txt"), h.Inside)
	write(filepath.Join(h.Grant, "sub", "deep.txt"), h.Inside)
	link(filepath.Join(h.Outside, "secret.txt"), "abs-file")
	link(h.Outside, "abs-dir")
	link("../../outside/secret.txt", "rel-file")
	link("../../outside/dir", "rel-dir")
	link("chain2", "chain1")
	link("chain3", "chain2")
	link("../../outside/secret.txt", "chain3")
	link("/", "root")
	link("hello.txt", "inside")
	link("../hello.txt", "sub/up")
	link("sub", "subdir")
	link(filepath.Join(h.Grant, "hello.txt"), "abs-inside")
	if err := os.Link(filepath.Join(h.Outside, "secret.txt"), filepath.Join(h.Grant, "hard.txt")); err != nil {
		t.Fatal(err)
	}
	return h
}

// Escapes are guest paths, relative to the grant, that lead out of it.
var Escapes = []string{
	"abs-file", "abs-dir/secret.txt", "abs-dir/dir/passwd", "rel-file", "rel-dir/passwd",
	"chain1", "chain2", "root/etc/passwd", "hard.txt", "abs-inside",
	// wazero refuses these lexically before any resolver sees them; the resolver must too.
	"../outside/secret.txt", "sub/../../outside/secret.txt",
}

// Allowed are guest paths that stay inside the grant, through links or not.
var Allowed = []string{"hello.txt", "inside", "sub/up", "subdir/deep.txt", "sub/deep.txt", "./sub/../hello.txt"}

func TestGrantFSResolvers(t *testing.T) {
	h := NewHostileTree(t)
	resolvers := map[string]func(string) (resolver, error){
		"default": newResolver,
		"os.Root": newRootResolver,
	}
	for name, newR := range resolvers {
		t.Run(name, func(t *testing.T) {
			r, err := newR(h.Grant)
			if err != nil {
				t.Fatal(err)
			}
			g := &grantFS{dir: h.Grant, r: r}
			t.Cleanup(func() { g.close() })

			for _, p := range Escapes {
				t.Run("escape "+p, func(t *testing.T) {
					if f, errno := g.OpenFile(p, experimentalsys.O_RDONLY, 0); errno == 0 {
						buf := make([]byte, 256)
						n, _ := f.Read(buf)
						f.Close()
						t.Fatalf("open %s succeeded and read %q", p, buf[:n])
					}
					if st, errno := g.Stat(p); errno == 0 {
						t.Fatalf("stat %s succeeded: %+v", p, st)
					}
				})
			}
			for _, p := range Allowed {
				t.Run("allowed "+p, func(t *testing.T) {
					f, errno := g.OpenFile(p, experimentalsys.O_RDONLY, 0)
					if errno != 0 {
						t.Fatalf("open %s: %v", p, errno)
					}
					defer f.Close()
					buf := make([]byte, 256)
					n, errno := f.Read(buf)
					if errno != 0 || string(buf[:n]) != h.Inside {
						t.Fatalf("read %s: %q, %v; want %q", p, buf[:n], errno, h.Inside)
					}
				})
			}

			t.Run("no follow", func(t *testing.T) {
				if _, errno := g.OpenFile("inside", experimentalsys.O_RDONLY|experimentalsys.O_NOFOLLOW, 0); errno != experimentalsys.ELOOP {
					t.Fatalf("open of a link without following: %v, want ELOOP", errno)
				}
				st, errno := g.Lstat("abs-file")
				if errno != 0 || st.Mode&fs.ModeSymlink == 0 {
					t.Fatalf("lstat of a link: %v %v", st.Mode, errno)
				}
				target, errno := g.Readlink("abs-file")
				if errno != 0 || target != filepath.Join(h.Outside, "secret.txt") {
					t.Fatalf("readlink: %q %v", target, errno)
				}
				if _, errno := g.Readlink("hello.txt"); errno != experimentalsys.EINVAL {
					t.Fatalf("readlink of a file: %v, want EINVAL", errno)
				}
			})

			t.Run("read-only", func(t *testing.T) {
				for _, flag := range []experimentalsys.Oflag{experimentalsys.O_WRONLY, experimentalsys.O_RDWR,
					experimentalsys.O_CREAT, experimentalsys.O_TRUNC, experimentalsys.O_APPEND} {
					if _, errno := g.OpenFile("hello.txt", flag, 0o644); errno != experimentalsys.EROFS {
						t.Fatalf("open with %v: %v, want EROFS", flag, errno)
					}
				}
				if errno := g.Mkdir("new", 0o755); errno != experimentalsys.EROFS {
					t.Fatalf("mkdir: %v", errno)
				}
				f, errno := g.OpenFile("hello.txt", experimentalsys.O_RDONLY, 0)
				if errno != 0 {
					t.Fatal(errno)
				}
				defer f.Close()
				if _, errno := f.Write([]byte("x")); errno != experimentalsys.EBADF {
					t.Fatalf("write: %v, want EBADF", errno)
				}
			})

			t.Run("list and rewind", func(t *testing.T) {
				d, errno := g.OpenFile(".", experimentalsys.O_RDONLY|experimentalsys.O_DIRECTORY, 0)
				if errno != 0 {
					t.Fatal(errno)
				}
				defer d.Close()
				names := func() string {
					t.Helper()
					es, errno := d.Readdir(100)
					if errno != 0 {
						t.Fatal(errno)
					}
					var ns []string
					for _, e := range es {
						ns = append(ns, e.Name)
					}
					return strings.Join(ns, ",")
				}
				first := names()
				if !strings.Contains(first, "hello.txt") || !strings.Contains(first, "abs-dir") {
					t.Fatalf("listing %q", first)
				}
				if _, errno := d.Seek(0, 0); errno != 0 {
					t.Fatal(errno)
				}
				if again := names(); len(again) != len(first) {
					t.Fatalf("after rewind: %q, want %q", again, first)
				}
			})

			t.Run("named pipe", func(t *testing.T) {
				if err := mkfifo(filepath.Join(h.Grant, "fifo")); err != nil {
					t.Skip(err)
				}
				defer os.Remove(filepath.Join(h.Grant, "fifo"))
				if _, errno := g.OpenFile("fifo", experimentalsys.O_RDONLY, 0); errno != experimentalsys.EACCES {
					t.Fatalf("open of a named pipe: %v, want EACCES", errno)
				}
			})
		})
	}
}

// TestGrantFSSwapRace swaps a directory of the grant for a link out of it while names
// through it are opened: resolution must never land outside, whatever the interleaving.
func TestGrantFSSwapRace(t *testing.T) {
	h := NewHostileTree(t)
	flip := filepath.Join(h.Grant, "flip")
	real := filepath.Join(h.Grant, "real")
	if err := os.MkdirAll(real, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(real, "passwd"), []byte(h.Inside), 0o644); err != nil {
		t.Fatal(err)
	}
	rounds := 2000
	if testing.Short() {
		rounds = 200
	}
	for name, newR := range map[string]func(string) (resolver, error){"default": newResolver, "os.Root": newRootResolver} {
		t.Run(name, func(t *testing.T) {
			r, err := newR(h.Grant)
			if err != nil {
				t.Fatal(err)
			}
			g := &grantFS{dir: h.Grant, r: r}
			defer g.close()

			stop := make(chan struct{})
			done := make(chan error, 1)
			go func() { // owned by this test: ends when stop closes
				defer close(done)
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					// rename over flip is atomic: flip is always the directory or the link.
					tmp := flip + ".tmp"
					os.Remove(tmp)
					src := "real"
					if i%2 == 1 {
						src = "../../outside/dir" // dir/passwd is the secret, with one link
					}
					if err := os.Symlink(src, tmp); err != nil {
						done <- err
						return
					}
					if err := os.Rename(tmp, flip); err != nil {
						done <- err
						return
					}
				}
			}()
			defer func() {
				close(stop)
				if err := <-done; err != nil {
					t.Error(err)
				}
			}()
			inside := 0
			for range rounds {
				f, errno := g.OpenFile("flip/passwd", experimentalsys.O_RDONLY, 0)
				if errno != 0 {
					continue
				}
				buf := make([]byte, 256)
				n, _ := f.Read(buf)
				f.Close()
				if string(buf[:n]) == h.Secret {
					t.Fatal("read the file outside the grant through a swapped link")
				}
				inside++
			}
			t.Logf("%d of %d opens landed inside; the rest were refused", inside, rounds)
		})
	}
}

func TestOpenGrantRefusesLinkedSource(t *testing.T) {
	tmp := t.TempDir()
	if err := os.Symlink("/", filepath.Join(tmp, "root")); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, source, want string }{
		{"link to /", filepath.Join(tmp, "root"), "is a symbolic link to /"},
		{"missing", filepath.Join(tmp, "missing"), "does not exist"},
		{"a file", filepath.Join(tmp, "root", "etc", "passwd"), "not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := openGrant(tt.source, "/static")
			if err == nil {
				g.close()
				t.Fatalf("openGrant(%s) succeeded", tt.source)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestGuestName(t *testing.T) {
	tests := []struct {
		in, name string
		dir      bool
		errno    experimentalsys.Errno
	}{
		{"", ".", true, 0}, {".", ".", true, 0}, {"/", ".", true, 0}, {"//", ".", true, 0},
		{"a/b", "a/b", false, 0}, {"a/b/", "a/b", true, 0}, {"/a/./b", "a/b", false, 0},
		{"a/../b", "b", false, 0}, {"a/..", ".", true, 0},
		{"..", "", false, experimentalsys.EPERM}, {"../x", "", false, experimentalsys.EPERM},
		{"a/../../x", "", false, experimentalsys.EPERM}, {"/../x", "", false, experimentalsys.EPERM},
	}
	for _, tt := range tests {
		name, dir, errno := guestName(tt.in)
		if name != tt.name || dir != tt.dir || errno != tt.errno {
			t.Errorf("guestName(%q) = %q, %v, %v; want %q, %v, %v", tt.in, name, dir, errno, tt.name, tt.dir, tt.errno)
		}
	}
}

// FuzzGuestName checks that whatever path a guest sends, the name handed to a resolver
// is relative, clean and never climbs.
func FuzzGuestName(f *testing.F) {
	for _, s := range []string{"", "/", "a/b/", "../x", "a/../../x", "./a//b/../c", "...", "a/..b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		name, _, errno := guestName(p)
		if errno != 0 {
			return
		}
		if name == "" || strings.HasPrefix(name, "/") || name == ".." || strings.HasPrefix(name, "../") ||
			strings.Contains(name, "/../") || strings.HasSuffix(name, "/..") || filepath.ToSlash(filepath.Clean(name)) != name {
			t.Fatalf("guestName(%q) = %q", p, name)
		}
	})
}
