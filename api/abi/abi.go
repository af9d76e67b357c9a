// Package abi is the wire format between the Fermion host and a reactor guest.
//
// It is shared by the host (internal/sandbox) and the guest SDK (sdk/fermion), so it
// imports nothing but the standard library's smallest packages: a guest binary pays for
// every import.
//
// A reactor guest exports:
//
//	_initialize                       run once after instantiation (Go c-shared runtime init)
//	fermion_abi_v1() -> i32           marker; returns Version
//	fermion_buf(size i32) -> i32      pointer to a guest buffer of at least size bytes
//	fermion_handle(len i32) -> i32    handle the Request encoded in the first len bytes of the buffer
//
// and imports from module "fermion":
//
//	response(ptr, len i32)            the encoded Response (called once per handle)
//	http_send(ptr, len i32) -> i32    perform an outbound request; returns the length of the result
//	http_take(ptr, len i32)           copy the pending outbound result into guest memory
//
// All integers are little-endian. Strings and byte slices are a u32 length then bytes.
//
// In a request the host sends, header names are in canonical form (as net/textproto
// makes them) and the values of a repeated name are adjacent entries, so a guest can
// build its header map without canonicalising or looking names up first. A guest must
// still accept any order.
package abi

import (
	"errors"
	"unsafe"
)

// Version is the ABI revision a guest declares through fermion_abi_v1.
const Version = 1

// Names of the exports and imports that make up the ABI.
const (
	ExportMarker     = "fermion_abi_v1"
	ExportBuf        = "fermion_buf"
	ExportHandle     = "fermion_handle"
	ExportInitialize = "_initialize"
	ExportStart      = "_start"

	HostModule   = "fermion"
	HostResponse = "response"
	HostHTTPSend = "http_send"
	HostHTTPTake = "http_take"
)

// Handle results returned by fermion_handle.
const (
	HandleOK       = 0 // the guest called response exactly once
	HandleBadInput = 1 // the request could not be decoded
	HandlePanic    = 2 // the handler panicked; the instance must not be reused
)

// ErrShort is returned when an encoding ends before its fields do.
var ErrShort = errors.New("abi: truncated message")

// ErrTooLarge is returned when a length field exceeds the bytes that follow it.
var ErrTooLarge = errors.New("abi: length exceeds message")

var errTrailing = errors.New("abi: trailing bytes after message")

// Header is one header field; repeated names are repeated entries.
type Header struct {
	Name, Value string
}

// Request is an HTTP request as the guest sees it.
type Request struct {
	Method     string
	URI        string // path and query, as on the request line; absolute URL for outbound requests
	Host       string
	RemoteAddr string
	Headers    []Header
	Body       []byte
}

// Response is an HTTP response produced by the guest, or received by an outbound call.
type Response struct {
	Status  int
	Headers []Header
	Body    []byte
}

// Outbound result tags: the first byte of an http_send result.
const (
	ResultOK    = 0 // a Response follows
	ResultError = 1 // an error message string follows
)

// AppendRequest appends the encoding of r to b.
func AppendRequest(b []byte, r *Request) []byte {
	b, at := AppendRequestHead(b, r.Method, r.URI, r.Host, r.RemoteAddr)
	for _, h := range r.Headers {
		b = AppendHeader(b, h.Name, h.Value)
	}
	return FinishRequest(b, at, len(r.Headers), r.Body)
}

// AppendRequestHead, AppendHeader and FinishRequest encode a request field by field,
// for a host whose header fields are not in a []Header (a map): the head, then each
// field, then the count and the body. Listing the fields first would cost a typed copy
// of every field into the list and a second pass. AppendRequestHead returns b and
// where FinishRequest writes the count of fields.
func AppendRequestHead(b []byte, method, uri, host, remoteAddr string) ([]byte, int) {
	b = appendString(b, method)
	b = appendString(b, uri)
	b = appendString(b, host)
	b = appendString(b, remoteAddr)
	at := len(b)
	return appendU32(b, 0), at
}

// AppendHeader appends one header field (see AppendRequestHead).
func AppendHeader(b []byte, name, value string) []byte {
	b = appendString(b, name)
	return appendString(b, value)
}

// FinishRequest writes n, the count of fields appended since AppendRequestHead
// returned at, and appends the body.
func FinishRequest(b []byte, at, n int, body []byte) []byte {
	c := b[at : at+4]
	c[0], c[1], c[2], c[3] = byte(n), byte(n>>8), byte(n>>16), byte(n>>24)
	return appendBytes(b, body)
}

// DecodeRequest decodes a Request. Nothing in r aliases b, because the guest reuses its
// buffer for the next request; but the strings share one copy of the message's head
// (every field before the body), made with a single allocation, and Body is a second
// copy. In a wasm guest every allocation and every call costs many times what it does
// natively, so this is written as two flat passes rather than with the decoder.
func DecodeRequest(b []byte, r *Request) error {
	head, nh, body, err := SplitRequest(b)
	if err != nil {
		return err
	}
	ParseRequestHead(string(head), nh, r)
	r.Body = nil
	if len(body) > 0 {
		r.Body = append([]byte(nil), body...)
	}
	return nil
}

// field returns the length-prefixed string at s[q:] and the offset after it.
func field(s string, q int) (string, int) {
	n := int(uint32(s[q]) | uint32(s[q+1])<<8 | uint32(s[q+2])<<16 | uint32(s[q+3])<<24)
	return s[q+4 : q+4+n], q + 4 + n
}

// AppendResponse appends the encoding of r to b.
func AppendResponse(b []byte, r *Response) []byte {
	b = appendU32(b, uint32(r.Status))
	b = appendHeaders(b, r.Headers)
	return appendBytes(b, r.Body)
}

// AppendResponseHead appends the encoding of a Response with an empty body: its last
// four bytes are the body's length, zero, for a writer that appends the body after
// them to set (little-endian, as every length).
func AppendResponseHead(b []byte, status int, headers []Header) []byte {
	// appendHeaders written out: every guest response comes here, and in a Go wasm
	// guest a call costs more than the few bytes of code it saves.
	b = appendU32(b, uint32(status))
	b = appendU32(b, uint32(len(headers)))
	for _, h := range headers {
		b = appendString(b, h.Name)
		b = appendString(b, h.Value)
	}
	return append(b, 0, 0, 0, 0)
}

// DecodeResponse decodes a Response. When alias is true, Body and the header strings
// are views of b, so the caller must never modify b afterwards (the host copies guest
// memory once and keeps views of that copy); otherwise they are copies.
func DecodeResponse(b []byte, r *Response, alias bool) error {
	d := decoder{b: b, alias: alias}
	r.Status = int(d.u32())
	r.Headers = d.headers(r.Headers[:0])
	if alias {
		r.Body = d.bytes()
	} else {
		r.Body = d.bytesCopy()
	}
	return d.done()
}

// AppendResultOK appends a successful outbound result.
func AppendResultOK(b []byte, r *Response) []byte {
	return AppendResponse(append(b, ResultOK), r)
}

// AppendResultError appends a failed outbound result carrying msg.
func AppendResultError(b []byte, msg string) []byte {
	return appendString(append(b, ResultError), msg)
}

// DecodeResult decodes an outbound result: a Response, or the host's error message.
func DecodeResult(b []byte, r *Response) (errMsg string, err error) {
	if len(b) == 0 {
		return "", ErrShort
	}
	switch b[0] {
	case ResultOK:
		return "", DecodeResponse(b[1:], r, false)
	case ResultError:
		d := decoder{b: b[1:]}
		msg := d.string()
		return msg, d.done()
	default:
		return "", errors.New("abi: unknown result tag")
	}
}

func appendU32(b []byte, v uint32) []byte {
	return append(b, byte(v), byte(v>>8), byte(v>>16), byte(v>>24))
}

func appendString(b []byte, s string) []byte {
	b = appendU32(b, uint32(len(s)))
	return append(b, s...)
}

func appendBytes(b []byte, p []byte) []byte {
	b = appendU32(b, uint32(len(p)))
	return append(b, p...)
}

func appendHeaders(b []byte, hs []Header) []byte {
	b = appendU32(b, uint32(len(hs)))
	for _, h := range hs {
		b = appendString(b, h.Name)
		b = appendString(b, h.Value)
	}
	return b
}

// decoder reads fields in order and remembers the first error, so callers check once.
type decoder struct {
	b     []byte
	err   error
	alias bool // strings are views of b (DecodeResponse with alias)
}

func (d *decoder) u32() uint32 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 4 {
		d.err = ErrShort
		return 0
	}
	v := uint32(d.b[0]) | uint32(d.b[1])<<8 | uint32(d.b[2])<<16 | uint32(d.b[3])<<24
	d.b = d.b[4:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.u32()
	if d.err != nil {
		return nil
	}
	if uint64(n) > uint64(len(d.b)) {
		d.err = ErrTooLarge
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) bytesCopy() []byte {
	p := d.bytes()
	if len(p) == 0 {
		return nil
	}
	return append([]byte(nil), p...)
}

func (d *decoder) string() string {
	p := d.bytes()
	if d.alias && len(p) > 0 {
		return unsafe.String(unsafe.SliceData(p), len(p))
	}
	return string(p)
}

func (d *decoder) headers(hs []Header) []Header {
	n := d.headerCount()
	for i := uint32(0); i < n && d.err == nil; i++ {
		name := d.string()
		value := d.string()
		hs = append(hs, Header{Name: name, Value: value})
	}
	return hs
}

// headerCount reads a header count, refusing counts the message cannot hold before
// anything is allocated for them: each header needs at least 8 bytes of lengths.
func (d *decoder) headerCount() uint32 {
	n := d.u32()
	if d.err != nil {
		return 0
	}
	if uint64(n)*8 > uint64(len(d.b)) {
		d.err = ErrTooLarge
		return 0
	}
	return n
}

func (d *decoder) done() error {
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return errTrailing
	}
	return nil
}
