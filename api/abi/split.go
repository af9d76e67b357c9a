package abi

// SplitRequest validates an encoded request and splits it, copying nothing, into its
// head (every field before the body), the number of headers the head holds, and the
// body. A guest that keeps the head's strings beyond its buffer's next use copies the
// head once and decodes it with ParseRequestHead; DecodeRequest does both.
//
// Every guest request passes through it, so it is written for the Go wasm backend,
// where each taken branch is an indirect jump through the function's block table: one
// bounds test per length prefix on the common path, the error's kind worked out only
// once a test fails.
func SplitRequest(b []byte) (head []byte, headers int, body []byte, err error) {
	end := uint64(len(b))
	p := uint64(0)
	for range 4 { // method, URI, host, remote address
		if p+4 > end {
			return nil, 0, nil, splitError(p, end)
		}
		p += 4 + le32(b, p)
	}
	if p+4 > end {
		return nil, 0, nil, splitError(p, end)
	}
	nh := le32(b, p)
	p += 4
	if nh*8 > end-p { // each header needs at least its two lengths
		return nil, 0, nil, ErrTooLarge
	}
	for range 2 * nh {
		if p+4 > end {
			return nil, 0, nil, splitError(p, end)
		}
		p += 4 + le32(b, p)
	}
	if p+4 > end {
		return nil, 0, nil, splitError(p, end)
	}
	switch n := p + 4 + le32(b, p); {
	case n > end:
		return nil, 0, nil, ErrTooLarge
	case n < end:
		return nil, 0, nil, errTrailing
	}
	return b[:p:p], int(nh), b[p+4 : end : end], nil
}

// SplitRequestHead is SplitRequest for a caller that reads the header list in place
// (HeaderAt) and so needs no count of it: it also records in ends where the head's
// first four strings (method, URI, host, remote address) end, so that ParseHeadAt can
// take them from a copy of the head without reading their lengths again. Its results
// and errors are SplitRequest's.
//
// It repeats SplitRequest's walk rather than sharing it (the ABI-only guest calls
// SplitRequest alone, and a Go wasm guest pays for every call and store), unrolled:
// each turn of a loop ends in a taken branch, an indirect jump in Go's wasm code.
func SplitRequestHead(b []byte, ends *[4]int) (head, body []byte, err error) {
	end := uint64(len(b))
	p := uint64(0)
	// Method, URI, host, remote address: a length test each, written out.
	if p+4 > end {
		return nil, nil, splitError(p, end)
	}
	p += 4 + le32(b, p)
	ends[0] = int(p)
	if p+4 > end {
		return nil, nil, splitError(p, end)
	}
	p += 4 + le32(b, p)
	ends[1] = int(p)
	if p+4 > end {
		return nil, nil, splitError(p, end)
	}
	p += 4 + le32(b, p)
	ends[2] = int(p)
	if p+4 > end {
		return nil, nil, splitError(p, end)
	}
	p += 4 + le32(b, p)
	ends[3] = int(p)
	if p+4 > end {
		return nil, nil, splitError(p, end)
	}
	nh := le32(b, p)
	p += 4
	if nh*8 > end-p {
		return nil, nil, ErrTooLarge
	}
	for range nh { // a name and a value a turn
		if p+4 > end {
			return nil, nil, splitError(p, end)
		}
		p += 4 + le32(b, p)
		if p+4 > end {
			return nil, nil, splitError(p, end)
		}
		p += 4 + le32(b, p)
	}
	if p+4 > end {
		return nil, nil, splitError(p, end)
	}
	switch n := p + 4 + le32(b, p); {
	case n > end:
		return nil, nil, ErrTooLarge
	case n < end:
		return nil, nil, errTrailing
	}
	return b[:p:p], b[p+4 : end : end], nil
}

// ParseHeadAt sets r's Method, URI, Host and RemoteAddr as views of head, a head
// SplitRequestHead returned (or a copy of it) with ends, and returns its header list
// for HeaderAt. Anything else may panic.
func ParseHeadAt(head string, ends *[4]int, r *Request) (headers string) {
	r.Method = head[4:ends[0]]
	r.URI = head[ends[0]+4 : ends[1]]
	r.Host = head[ends[1]+4 : ends[2]]
	r.RemoteAddr = head[ends[2]+4 : ends[3]]
	return head[ends[3]+4:]
}

// splitError is why SplitRequest cannot read a length at p: the string before it ran
// past the message's end, or the message ends within the length.
func splitError(p, end uint64) error {
	if p > end {
		return ErrTooLarge
	}
	return ErrShort
}

// le32 is the little-endian uint32 at b[p:].
func le32(b []byte, p uint64) uint64 {
	b = b[p : p+4]
	return uint64(uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24)
}

// ParseRequestHead sets every field of r but Body from head, which must hold the same
// bytes as a head SplitRequest returned with headers entries (anything else may panic).
// The strings are views of head; the headers are appended to r.Headers[:0], so a
// caller that gives it capacity for them allocates nothing.
func ParseRequestHead(head string, headers int, r *Request) {
	q := 0
	r.Method, q = field(head, q)
	r.URI, q = field(head, q)
	r.Host, q = field(head, q)
	r.RemoteAddr, q = field(head, q)
	q += 4
	hs := r.Headers[:0]
	for range headers {
		var h Header
		h.Name, q = field(head, q)
		h.Value, q = field(head, q)
		hs = append(hs, h)
	}
	r.Headers = hs
}

// HeaderStart is the offset of the first header field in head (ParseRequestHead's
// input) once r holds its strings: the fields that follow are a header list as
// HeaderAt reads it, ending where head ends.
func HeaderStart(r *Request) int {
	return 5*4 + len(r.Method) + len(r.URI) + len(r.Host) + len(r.RemoteAddr)
}

// HeaderAt returns the header field encoded at list[q:] and the offset of the next,
// where list is a header list from a head SplitRequest validated (see HeaderStart);
// a guest can read its fields in place instead of decoding them all first.
func HeaderAt(list string, q int) (h Header, next int) {
	h.Name, q = field(list, q)
	h.Value, q = field(list, q)
	return h, q
}
