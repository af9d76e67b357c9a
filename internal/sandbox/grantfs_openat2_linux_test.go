package sandbox

import "testing"

// On a kernel with openat2 the kernel resolves: the fallback must not be taken silently.
func TestGrantResolverIsOpenat2(t *testing.T) {
	if !openat2Works() {
		t.Skip("openat2 is not available here; os.Root resolves")
	}
	r, err := newResolver(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	if _, ok := r.(*openat2Resolver); !ok {
		t.Fatalf("resolver is %T, want *openat2Resolver", r)
	}
}
