package abi_test

import (
	"bytes"
	"errors"
	"testing"

	"fermion.dev/fermion/api/abi"
)

// splitReference is SplitRequest as first written, field by field with a length test
// each: the fast one must agree with it on every input, errors included.
func splitReference(b []byte) (head []byte, headers int, body []byte, err error) {
	le32 := func(p int) uint64 {
		return uint64(b[p]) | uint64(b[p+1])<<8 | uint64(b[p+2])<<16 | uint64(b[p+3])<<24
	}
	p, nh := 0, uint64(0)
	for i := uint64(0); i < 5+2*nh; i++ {
		if len(b)-p < 4 {
			return nil, 0, nil, abi.ErrShort
		}
		n := le32(p)
		p += 4
		if i == 4 {
			if n*8 > uint64(len(b)-p) {
				return nil, 0, nil, abi.ErrTooLarge
			}
			nh = n
			continue
		}
		if n > uint64(len(b)-p) {
			return nil, 0, nil, abi.ErrTooLarge
		}
		p += int(n)
	}
	if len(b)-p < 4 {
		return nil, 0, nil, abi.ErrShort
	}
	n := le32(p)
	if n > uint64(len(b)-p-4) {
		return nil, 0, nil, abi.ErrTooLarge
	}
	if n < uint64(len(b)-p-4) {
		return nil, 0, nil, errors.New("abi: trailing bytes after message")
	}
	return b[:p], int(nh), b[p+4:], nil
}

func TestSplitRequest(t *testing.T) {
	req := abi.Request{Method: "GET", URI: "/x", Host: "h", RemoteAddr: "r:1",
		Headers: []abi.Header{{"A", "1"}, {"B", ""}}, Body: []byte("body")}
	valid := abi.AppendRequest(nil, &req)
	tests := []struct {
		name string
		in   []byte
	}{
		{"valid", valid},
		{"no headers, no body", abi.AppendRequest(nil, &abi.Request{Method: "GET"})},
		{"empty", nil},
		{"truncated in a length", valid[:2]},
		{"string past the end", valid[:6]},
		{"truncated among the headers", valid[:len(valid)-30]},
		{"truncated body", valid[:len(valid)-1]},
		{"trailing byte", append(append([]byte(nil), valid...), 0)},
		{"huge first length", []byte{0xff, 0xff, 0xff, 0xff, 'G'}},
		{"huge header count", append(abi.AppendRequest(nil, &abi.Request{})[:16], 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkSplit(t, tt.in) })
	}
	// The parts are clipped: appending to one cannot write over what follows it.
	roomy := append(make([]byte, 0, len(valid)+8), valid...)
	head, _, body, err := abi.SplitRequest(roomy)
	if err != nil || cap(head) != len(head) || cap(body) != len(body) {
		t.Fatalf("head cap %d len %d, body cap %d len %d, %v", cap(head), len(head), cap(body), len(body), err)
	}
}

func checkSplit(t *testing.T, in []byte) {
	t.Helper()
	head, nh, body, err := abi.SplitRequest(in)
	wHead, wNH, wBody, wErr := splitReference(in)
	if (err == nil) != (wErr == nil) || err != nil && err.Error() != wErr.Error() {
		t.Fatalf("%x: error %v, want %v", in, err, wErr)
	}
	if !bytes.Equal(head, wHead) || nh != wNH || !bytes.Equal(body, wBody) {
		t.Fatalf("%x: head %x, %d headers, body %x; want %x, %d, %x", in, head, nh, body, wHead, wNH, wBody)
	}
	// SplitRequestHead agrees with it, and ParseHeadAt's strings from a copy of the
	// head with ParseRequestHead's.
	var ends [4]int
	head2, body2, err2 := abi.SplitRequestHead(in, &ends)
	if (err2 == nil) != (err == nil) || err2 != nil && err2.Error() != err.Error() || !bytes.Equal(head2, head) || !bytes.Equal(body2, body) {
		t.Fatalf("%x: SplitRequestHead: head %x, body %x, %v; SplitRequest: %x, %x, %v", in, head2, body2, err2, head, body, err)
	}
	if err != nil {
		return
	}
	if cap(head2) != len(head2) || cap(body2) != len(body2) {
		t.Fatalf("%x: SplitRequestHead's parts are not clipped", in)
	}
	var want, got abi.Request
	abi.ParseRequestHead(string(head), nh, &want)
	list := abi.ParseHeadAt(string(head2), &ends, &got)
	if got.Method != want.Method || got.URI != want.URI || got.Host != want.Host || got.RemoteAddr != want.RemoteAddr ||
		list != string(head[abi.HeaderStart(&want):]) {
		t.Fatalf("%x: ParseHeadAt %+v, header list %x; ParseRequestHead %+v", in, got, list, want)
	}
}

func FuzzSplitRequest(f *testing.F) {
	f.Add([]byte{})
	f.Add(abi.AppendRequest(nil, &abi.Request{Method: "GET", URI: "/", Headers: []abi.Header{{"A", "b"}}, Body: []byte("x")}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(checkSplit)
}

// TestHeaderAt reads a head's header list in place, as a guest does instead of
// decoding every field.
func TestHeaderAt(t *testing.T) {
	req := abi.Request{Method: "POST", URI: "/x?y", Host: "h:1", RemoteAddr: "r:2",
		Headers: []abi.Header{{"A", "1"}, {"", ""}, {"Long", string(bytes.Repeat([]byte("v"), 300))}}, Body: []byte("b")}
	head, nh, _, err := abi.SplitRequest(abi.AppendRequest(nil, &req))
	if err != nil {
		t.Fatal(err)
	}
	var r abi.Request
	abi.ParseRequestHead(string(head), 0, &r)
	var got []abi.Header
	list := string(head)[abi.HeaderStart(&r):]
	for q := 0; q < len(list); {
		var h abi.Header
		h, q = abi.HeaderAt(list, q)
		got = append(got, h)
	}
	if nh != 3 || len(got) != 3 || got[0] != req.Headers[0] || got[1] != req.Headers[1] || got[2] != req.Headers[2] {
		t.Fatalf("%d headers, read %q", nh, got)
	}
}

func TestAppendResponseHead(t *testing.T) {
	resp := abi.Response{Status: 201, Headers: []abi.Header{{"A", "1"}, {"B", "2"}}, Body: []byte("body")}
	b := abi.AppendResponseHead([]byte("prefix"), resp.Status, resp.Headers)
	at := len(b) - 4
	b = append(b, resp.Body...)
	b[at] = byte(len(resp.Body)) // the writer sets the body's length
	if want := abi.AppendResponse([]byte("prefix"), &resp); !bytes.Equal(b, want) {
		t.Fatalf("%x, want %x", b, want)
	}
}
