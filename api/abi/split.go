package abi

// SplitRequest validates an encoded request and splits it, copying nothing, into its
// head (every field before the body), the number of headers the head holds, and the
// body. A guest that keeps the head's strings beyond its buffer's next use copies the
// head once and decodes it with ParseRequestHead; DecodeRequest does both.
func SplitRequest(b []byte) (head []byte, headers int, body []byte, err error) {
	p := 0
	var nh uint32
	for i := uint32(0); i < 5+2*nh; i++ {
		if len(b)-p < 4 {
			return nil, 0, nil, ErrShort
		}
		n := le32(b, p)
		p += 4
		if i == 4 { // the header count, after the four strings
			if uint64(n)*8 > uint64(len(b)-p) {
				return nil, 0, nil, ErrTooLarge
			}
			nh = n
			continue
		}
		if uint64(n) > uint64(len(b)-p) {
			return nil, 0, nil, ErrTooLarge
		}
		p += int(n)
	}
	d := decoder{b: b[p:]}
	body = d.bytes()
	if err := d.done(); err != nil {
		return nil, 0, nil, err
	}
	return b[:p], int(nh), body, nil
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
