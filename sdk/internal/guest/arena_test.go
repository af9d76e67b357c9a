package guest

import (
	"bytes"
	"strings"
	"testing"

	"fermion.dev/fermion/api/abi"
)

func TestArena(t *testing.T) {
	var a Arena
	src := make([]byte, 0, arenaChunk)
	var got, want []string
	for i := range 2000 { // crosses many chunks, with some strings too large for one
		n := i % 700
		if i%250 == 0 {
			n = arenaChunk/4 + 1
		}
		src = append(src[:0], bytes.Repeat([]byte{byte('a' + i%26)}, n)...)
		got = append(got, a.String(src))
		want = append(want, string(src))
		clear(src) // the caller's buffer is reused; the copies must not change
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("string %d changed: %q…", i, got[i][:min(len(got[i]), 8)])
		}
	}
	for _, n := range []int{0, 1, 3, headerSlab / 4, headerSlab/4 + 1, headerSlab} {
		hs := a.Headers(n)
		if len(hs) != 0 || cap(hs) != n {
			t.Fatalf("Headers(%d): len %d cap %d", n, len(hs), cap(hs))
		}
		next := a.Headers(1)
		hs = append(hs, make([]abi.Header, n)...)
		if n > 0 {
			hs[n-1].Name = "mine"
			if next[:1][0].Name == "mine" {
				t.Fatalf("Headers(%d) overlaps the next slice", n)
			}
		}
		hs = append(hs, abi.Header{Name: "past the end"})
		if next[:1][0].Name != "" {
			t.Fatalf("appending past Headers(%d)'s capacity wrote into the next slice", n)
		}
	}
}

func TestDecodeRequest(t *testing.T) {
	want := abi.Request{Method: "PUT", URI: "/x?y", Host: "h", RemoteAddr: "r:1",
		Headers: []abi.Header{{Name: "A", Value: "1"}, {Name: "B", Value: strings.Repeat("b", 100)}}, Body: []byte("body")}
	in := abi.AppendRequest(nil, &want)
	var a Arena
	var r abi.Request
	if err := DecodeRequest(in, &r, &a); err != nil {
		t.Fatal(err)
	}
	if &r.Body[0] != &in[len(in)-4] {
		t.Fatal("body is a copy, want a view of the input")
	}
	clear(in)
	if r.Method != want.Method || r.URI != want.URI || r.Host != want.Host || r.RemoteAddr != want.RemoteAddr ||
		len(r.Headers) != 2 || r.Headers[1] != want.Headers[1] {
		t.Fatalf("%+v", r)
	}
	for _, bad := range [][]byte{nil, {1, 2}, append(abi.AppendRequest(nil, &want), 0)} {
		if err := DecodeRequest(bad, &r, &a); err == nil {
			t.Fatalf("%x: no error", bad)
		}
	}
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add(abi.AppendRequest(nil, &abi.Request{Method: "GET", URI: "/", Headers: []abi.Header{{Name: "A", Value: "b"}}, Body: []byte("x")}))
	f.Add([]byte{})
	var a Arena
	f.Fuzz(func(t *testing.T, in []byte) {
		var r, std abi.Request
		err := DecodeRequest(in, &r, &a)
		stdErr := abi.DecodeRequest(in, &std)
		if (err == nil) != (stdErr == nil) {
			t.Fatalf("error %v, abi.DecodeRequest %v", err, stdErr)
		}
		if err == nil && (r.Method != std.Method || r.URI != std.URI || len(r.Headers) != len(std.Headers) || !bytes.Equal(r.Body, std.Body)) {
			t.Fatalf("%+v, abi.DecodeRequest %+v", r, std)
		}
	})
}
