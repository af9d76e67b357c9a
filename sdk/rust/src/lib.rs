//! Fermion's guest SDK for Rust: HTTP handlers for Fermion's reactor ABI, with the
//! shapes of the Go SDK (a handler gets a [`ResponseWriter`] and a [`Request`];
//! [`Header`] has `get`, `set`, `add` and `del`), and nothing beyond `std`, so a
//! function builds offline with the toolchain Debian packages (`rustc` 1.63 and its
//! `wasm32-wasi` standard library).
//!
//! ```no_run
//! use fermion::{Request, ResponseWriter};
//!
//! fermion::handler!(handle);
//!
//! fn handle(w: &mut ResponseWriter, r: &Request) {
//!     w.header().set("Content-Type", "text/plain; charset=utf-8");
//!     write!(w, "Hello from {}!\n", r.path());
//! }
//! ```
//!
//! Build it as a `cdylib` for `wasm32-wasi` (`wasm32-wasip1` on toolchains from 1.78):
//!
//! ```text
//! cargo build --offline --release --target wasm32-wasi
//! ```
//!
//! The host instantiates the module once and calls the handler for many requests, one
//! at a time. A request's strings and body are views of the buffer the host wrote it
//! into (the borrow checker keeps them from outliving the call), and its header fields
//! are decoded from that buffer only when the handler first asks for them; the response
//! writer and the request's header are reused, so a handler that writes a few headers
//! and a body allocates nothing per request once warm.
//!
//! The host enforces the manifest's limits: a request body over `max_request_body` is
//! refused (413) before the handler runs, a response over `max_response_body` (502); a
//! handler past its deadline or memory cap is stopped and its instance discarded. A
//! panic aborts the instance (wasm32-wasi has no unwinding): the client gets a 500, the
//! host counts a trap, discards the instance, and the guest log has the panic message.
//! Outbound HTTP goes through the host, which allows only the manifest's
//! `allowed_outbound_hosts`: see [`outbound`].

use std::borrow::Cow;
use std::fmt;

mod abi;
mod header;
pub mod outbound;

pub use header::{canonical_header_key, Header};
use header::{Fields, Slot};

/// A request received by the function. Its strings and body borrow the host's request
/// buffer, valid for the handler's call; its header fields are decoded from that buffer
/// when the handler first asks for them.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    method: Cow<'a, str>,
    uri: Cow<'a, str>,
    host: Cow<'a, str>,
    remote_addr: Cow<'a, str>,
    header: Fields<'a>,
    body: Cow<'a, [u8]>,
}

impl<'a> Request<'a> {
    /// A request for testing a handler natively: no header fields, no body.
    pub fn new(method: &str, uri: &str) -> Request<'static> {
        Request {
            method: Cow::Owned(method.to_string()),
            uri: Cow::Owned(uri.to_string()),
            host: Cow::Borrowed(""),
            remote_addr: Cow::Borrowed(""),
            header: Fields::Owned(Header::new()),
            body: Cow::Borrowed(&[]),
        }
    }

    /// Adds a header field (for tests).
    pub fn with_header(mut self, name: &str, value: &str) -> Request<'a> {
        self.header.to_mut().add(name, value);
        self
    }

    /// Sets the body (for tests).
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Request<'a> {
        self.body = Cow::Owned(body.into());
        self
    }

    /// Sets the Host (for tests).
    pub fn with_host(mut self, host: &str) -> Request<'a> {
        self.host = Cow::Owned(host.to_string());
        self
    }

    /// The method: "GET", "POST", ...
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The request line's target, unmodified: path and query.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The path, as on the request line (still percent-encoded).
    pub fn path(&self) -> &str {
        match self.uri.find('?') {
            Some(i) => &self.uri[..i],
            None => &self.uri,
        }
    }

    /// The raw query, without the '?'; empty when there is none.
    pub fn query(&self) -> &str {
        match self.uri.find('?') {
            Some(i) => &self.uri[i + 1..],
            None => "",
        }
    }

    /// The first value of the query parameter `name`, decoded ('+' and %XX), as Go's
    /// `r.URL.Query().Get(name)` gives it; None when it is absent.
    pub fn query_value(&self, name: &str) -> Option<Cow<'_, str>> {
        self.query().split('&').find_map(|kv| {
            let (k, v) = match kv.find('=') {
                Some(i) => (&kv[..i], &kv[i + 1..]),
                None => (kv, ""),
            };
            if unescape(k) == name {
                Some(unescape(v))
            } else {
                None
            }
        })
    }

    /// The Host header's value: the host and port the client asked for.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The client's address as the node saw it.
    pub fn remote_addr(&self) -> &str {
        &self.remote_addr
    }

    /// The header fields, names in canonical form.
    pub fn header(&self) -> &Header {
        self.header.get()
    }

    /// The whole body (the host has read it, within `max_request_body`).
    pub fn body(&self) -> &[u8] {
        &self.body
    }
}

/// Decodes a query component: '+' is a space, %XX a byte; a malformed escape is kept
/// as it is, and invalid UTF-8 becomes U+FFFD.
fn unescape(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() && hex(b[i + 1]).is_some() && hex(b[i + 2]).is_some() => {
                out.push(hex(b[i + 1]).unwrap() << 4 | hex(b[i + 2]).unwrap());
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Builds the response. It is buffered and sent whole when the handler returns, so
/// header fields may change until then; the status is fixed by the first
/// `write_header`, or by the first write (200), as in Go's net/http.
#[derive(Default)]
pub struct ResponseWriter {
    header: Header,
    status: Option<u16>,
    body: Vec<u8>, // HEAD_ROOM bytes for the encoded head, then the body; empty until written
}

/// Room kept in front of a response's body for its encoded head (status, header fields,
/// the body's length), so encoding writes the head before the body where it lies
/// instead of copying the body after the head. A head larger than this (many or long
/// header fields) is encoded with a copy of the body.
const HEAD_ROOM: usize = 512;

/// Bounds the memory a reused writer keeps between requests, so one large response
/// does not pin its memory for the instance's life.
const MAX_KEPT: usize = 64 << 10;

impl ResponseWriter {
    /// An empty writer (for testing a handler natively).
    pub fn new() -> ResponseWriter {
        ResponseWriter::default()
    }

    /// The response's header fields.
    pub fn header(&mut self) -> &mut Header {
        &mut self.header
    }

    /// Sets the status, unless it is already set: a later call is ignored and noted on
    /// stderr, as net/http does with a superfluous WriteHeader. A status outside
    /// 100–999 makes the host answer 502.
    pub fn write_header(&mut self, status: u16) {
        match self.status {
            None => self.status = Some(status),
            Some(prev) => eprintln!("fermion: superfluous write_header({}) ignored; the status is already {}", status, prev),
        }
    }

    /// Appends to the body; the status becomes 200 if nothing set it.
    pub fn write(&mut self, b: &[u8]) {
        self.status.get_or_insert(200);
        self.body_buf().extend_from_slice(b);
    }

    /// Appends text to the body.
    pub fn write_str(&mut self, s: &str) {
        self.write(s.as_bytes())
    }

    /// Makes `write!(w, ...)` write formatted text to the body, with no trait to import
    /// and no error to handle: writing to the buffer cannot fail.
    pub fn write_fmt(&mut self, args: fmt::Arguments<'_>) {
        self.status.get_or_insert(200);
        let _ = fmt::Write::write_fmt(&mut BodyWriter(self.body_buf()), args);
    }

    /// The status sent: what `write_header` set, otherwise 200.
    pub fn status(&self) -> u16 {
        self.status.unwrap_or(200)
    }

    /// The body written so far.
    pub fn body(&self) -> &[u8] {
        self.body.get(HEAD_ROOM..).unwrap_or(&[])
    }

    /// The body's buffer, with its head room made on first use.
    fn body_buf(&mut self) -> &mut Vec<u8> {
        if self.body.len() < HEAD_ROOM {
            self.body.resize(HEAD_ROOM, 0);
        }
        &mut self.body
    }

    /// Readies the writer for the next request.
    fn reset(&mut self) {
        if self.body.capacity() > MAX_KEPT {
            self.body = Vec::new();
        }
        if self.header.capacity() > MAX_KEPT {
            self.header = Header::new();
        }
        self.body.truncate(HEAD_ROOM);
        self.header.clear();
        self.status = None;
    }

    /// The encoded response: its head written into the room before the body, or head
    /// and body copied into out when the head does not fit there.
    fn encode<'s>(&'s mut self, out: &'s mut Vec<u8>) -> &'s [u8] {
        let head = 12 + self.header.encoded_len();
        let status = self.status();
        let body_len = self.body().len();
        if head > HEAD_ROOM {
            out.clear();
            out.reserve(head + body_len);
            put_head(status, &self.header, body_len, |b| out.extend_from_slice(b));
            out.extend_from_slice(self.body());
            return out;
        }
        let start = HEAD_ROOM - head;
        self.body_buf();
        let (room, header) = (&mut self.body[start..HEAD_ROOM], &self.header);
        let mut at = 0;
        put_head(status, header, body_len, |b| {
            room[at..at + b.len()].copy_from_slice(b);
            at += b.len();
        });
        &self.body[start..]
    }
}

/// Writes a response's head in the wire format through put: the status, the header
/// fields, and the length prefix of a body of body_len bytes, which follows it.
#[inline]
fn put_head(status: u16, header: &Header, body_len: usize, mut put: impl FnMut(&[u8])) {
    put(&u32::from(status).to_le_bytes());
    put(&(header.len() as u32).to_le_bytes());
    header.for_each(|name, value| {
        put(&(name.len() as u32).to_le_bytes());
        put(name.as_bytes());
        put(&(value.len() as u32).to_le_bytes());
        put(value.as_bytes());
    });
    put(&(body_len as u32).to_le_bytes());
}

impl fmt::Debug for ResponseWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseWriter").field("header", &self.header).field("status", &self.status).field("body", &self.body()).finish()
    }
}

impl std::io::Write for ResponseWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        ResponseWriter::write(self, b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct BodyWriter<'a>(&'a mut Vec<u8>);

impl fmt::Write for BodyWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Replies with the given status and message as plain text, as Go's http.Error does.
/// The handler should return after it.
pub fn error(w: &mut ResponseWriter, msg: &str, status: u16) {
    let h = w.header();
    h.del("Content-Length");
    h.set("Content-Type", "text/plain; charset=utf-8");
    h.set("X-Content-Type-Options", "nosniff");
    w.write_header(status);
    w.write_str(msg);
    w.write(b"\n");
}

/// A handler: what [`handler!`] registers.
pub type Handler = fn(&mut ResponseWriter, &Request<'_>);

/// Registers the function's handler: `fermion::handler!(handle);` at the top level of
/// the crate (a `cdylib`). It defines the module's exports (`fermion_abi_v1`,
/// `fermion_buf`, `fermion_handle`, and `_initialize` where rustc does not), so a crate
/// has exactly one.
#[macro_export]
macro_rules! handler {
    ($handler:path) => {
        $crate::__initialize!();

        #[no_mangle]
        pub extern "C" fn fermion_abi_v1() -> i32 {
            $crate::__private::abi_version()
        }

        #[no_mangle]
        pub extern "C" fn fermion_buf(size: i32) -> i32 {
            $crate::__private::buf(size)
        }

        #[no_mangle]
        pub extern "C" fn fermion_handle(len: i32) -> i32 {
            $crate::__private::handle(len, $handler)
        }
    };
}

/// Defines `_initialize` where rustc does not: rustc 1.100 and later link wasi-libc's
/// reactor start file into a cdylib, whose `_initialize` runs the constructors (build.rs
/// tells which); the SDK then sets itself up on the first request instead.
#[cfg(not(fermion_rustc_defines_initialize))]
#[doc(hidden)]
#[macro_export]
macro_rules! __initialize {
    () => {
        #[no_mangle]
        pub extern "C" fn _initialize() {
            $crate::__private::initialize()
        }
    };
}

#[cfg(fermion_rustc_defines_initialize)]
#[doc(hidden)]
#[macro_export]
macro_rules! __initialize {
    () => {};
}

/// The reactor ABI's guest half, for [`handler!`]'s exports.
#[doc(hidden)]
pub mod __private {
    use super::*;

    /// Everything an instance keeps between requests. wasm32-wasi runs one thread, and
    /// the host makes one call at a time, so the exports have it to themselves.
    struct State {
        buf: Vec<u8>, // the request buffer the host writes into
        out: Vec<u8>, // the encoded response
        header: Slot, // where the request's header is decoded, if the handler reads it
        rw: ResponseWriter,
        hooked: bool,
    }

    static mut STATE: Option<State> = None;

    fn state() -> &'static mut State {
        // SAFETY: one thread, and no export is re-entered (the host calls one at a time
        // and calls back into no export), so no two references are live at once.
        let st = unsafe { &mut *std::ptr::addr_of_mut!(STATE) };
        st.get_or_insert_with(|| State { buf: Vec::new(), out: Vec::new(), header: Slot::default(), rw: ResponseWriter::new(), hooked: false })
    }

    /// Runs once, before any request: the reactor's `_initialize`, which a Rust
    /// `cdylib` does not get from rustc 1.63's wasm32-wasi target, so the SDK provides
    /// what wasi-libc's reactor start file does (run the static constructors) and sets
    /// up the instance's state.
    pub fn initialize() {
        #[cfg(target_arch = "wasm32")]
        {
            extern "C" {
                // Made by the linker: runs the static constructors of the C code linked in.
                fn __wasm_call_ctors();
            }
            // SAFETY: called once, by the host, before any other export.
            unsafe { __wasm_call_ctors() }
        }
        setup();
    }

    /// Installs the panic hook, once: from `_initialize`, or from the first
    /// `fermion_buf` where rustc's own `_initialize` ran instead.
    fn setup() -> &'static mut State {
        let st = state();
        if !st.hooked {
            st.hooked = true;
            // A closure, so the hook's argument type is not named: it is PanicInfo
            // in rustc 1.63 and PanicHookInfo from 1.81, where PanicInfo is deprecated.
            std::panic::set_hook(Box::new(|info| {
                let payload = info.payload();
                let msg = match payload.downcast_ref::<&str>() {
                    Some(s) => *s,
                    None => payload.downcast_ref::<String>().map(String::as_str).unwrap_or("Box<dyn Any>"),
                };
                report_panic(msg, info.location());
            }));
        }
        st
    }

    pub fn abi_version() -> i32 {
        abi::VERSION
    }

    /// Returns the address of a buffer of at least size bytes for the next request.
    pub fn buf(size: i32) -> i32 {
        if size < 0 {
            return 0;
        }
        let st = setup();
        // Always a real address, even for an empty request.
        let size = (size as usize).max(1);
        if st.buf.len() < size {
            st.buf = vec![0; size];
        }
        st.buf.as_mut_ptr() as usize as i32
    }

    pub fn handle(len: i32, h: Handler) -> i32 {
        let st = setup();
        if len < 0 || len as usize > st.buf.len() {
            return abi::HANDLE_BAD_INPUT;
        }
        match serve(&st.buf[..len as usize], &mut st.header, &mut st.rw, &mut st.out, h) {
            Ok(response) => {
                crate::host::response(response);
                abi::HANDLE_OK
            }
            Err(code) => code,
        }
    }

    /// Decodes one request from input, runs h and returns the encoded response (in
    /// rw's buffer, or in out), or the result code of a request it could not decode.
    pub(crate) fn serve<'s>(input: &[u8], header: &mut Slot, rw: &'s mut ResponseWriter, out: &'s mut Vec<u8>, h: Handler) -> Result<&'s [u8], i32> {
        header.reset(MAX_KEPT);
        let req = match decode_request(input, header) {
            Ok(r) => r,
            Err(_) => return Err(abi::HANDLE_BAD_INPUT),
        };
        rw.reset();
        h(rw, &req);
        if out.capacity() > MAX_KEPT {
            // Only a response with a head over HEAD_ROOM uses out; bound what it keeps.
            out.clear();
            out.shrink_to(MAX_KEPT);
        }
        Ok(rw.encode(out))
    }

    /// Checks the whole request's framing, so a malformed one is refused before the
    /// handler runs, but leaves its header fields in the wire format for the handler
    /// to decode if it reads them.
    fn decode_request<'a>(input: &'a [u8], header: &'a Slot) -> Result<Request<'a>, abi::DecodeError> {
        let mut d = abi::Decoder::new(input);
        let fields = [d.bytes()?, d.bytes()?, d.bytes()?, d.bytes()?];
        let [method, uri, host, remote_addr] = head_texts(&input[..input.len() - d.rest().len()], fields);
        let n = d.count()?;
        let section = d.rest();
        for _ in 0..n {
            d.bytes()?;
            d.bytes()?;
        }
        let raw = &section[..section.len() - d.rest().len()];
        let body = d.bytes()?;
        d.done()?;
        Ok(Request { method, uri, host, remote_addr, header: Fields::Wire { raw, n, slot: header }, body: Cow::Borrowed(body) })
    }

    /// The request line's and the peer's strings (fields, each a part of head, with
    /// their length prefixes between them), checked in one pass over head rather than
    /// one call per field: the calls, not the bytes, are what cost for strings this
    /// short (bench/RESULTS.md, "rustlean"). The pass is an inline ASCII check, then
    /// the UTF-8 validator for a head with other characters. When the validator fails
    /// (invalid UTF-8 in a field, or a length prefix with a byte of 0x80 or more, as a
    /// field over 127 bytes has), each field is checked alone.
    fn head_texts<'a>(head: &'a [u8], fields: [&'a [u8]; 4]) -> [Cow<'a, str>; 4] {
        if head.is_ascii() {
            // SAFETY: ASCII is UTF-8, and every byte of it a character boundary.
            return fields.map(|f| Cow::Borrowed(unsafe { std::str::from_utf8_unchecked(f) }));
        }
        let s = match std::str::from_utf8(head) {
            Ok(s) => s,
            Err(_) => return fields.map(text),
        };
        fields.map(|f| {
            let at = f.as_ptr() as usize - head.as_ptr() as usize;
            // A character may straddle a field and a prefix: then the field alone is
            // not UTF-8, and get finds its ends off a character boundary.
            match s.get(at..at + f.len()) {
                Some(t) => Cow::Borrowed(t),
                None => text(f),
            }
        })
    }

    /// A view of b, or a copy with invalid UTF-8 replaced.
    fn text(b: &[u8]) -> Cow<'_, str> {
        match std::str::from_utf8(b) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => Cow::Owned(String::from_utf8_lossy(b).into_owned()),
        }
    }

    /// Writes a panic to stderr as the Go SDK does ("panic: ..."), where the host's
    /// guest log picks it up; the instance then aborts and the host discards it.
    fn report_panic(msg: &str, location: Option<&std::panic::Location<'_>>) {
        match location {
            Some(l) => eprintln!("panic: {} (at {}:{}:{})", msg, l.file(), l.line(), l.column()),
            None => eprintln!("panic: {}", msg),
        }
    }
}

/// The host's functions (module "fermion"); outside wasm they are unavailable, so a
/// function's handlers can still be unit-tested natively.
mod host {
    use crate::outbound::Error;

    #[cfg(target_arch = "wasm32")]
    #[link(wasm_import_module = "fermion")]
    extern "C" {
        #[link_name = "response"]
        fn host_response(ptr: *const u8, len: u32);
        #[link_name = "http_send"]
        fn host_http_send(ptr: *const u8, len: u32) -> u32;
        #[link_name = "http_take"]
        fn host_http_take(ptr: *mut u8, len: u32);
    }

    #[cfg(target_arch = "wasm32")]
    pub fn response(out: &[u8]) {
        // SAFETY: the host reads len bytes at ptr during the call and keeps no pointer.
        unsafe { host_response(out.as_ptr(), out.len() as u32) }
    }

    #[cfg(target_arch = "wasm32")]
    pub fn send(req: &[u8]) -> Result<Vec<u8>, Error> {
        // SAFETY: the host reads req during http_send and writes exactly n bytes into
        // result during http_take.
        unsafe {
            let n = host_http_send(req.as_ptr(), req.len() as u32);
            let mut result = vec![0u8; n as usize];
            if n > 0 {
                host_http_take(result.as_mut_ptr(), n);
            }
            Ok(result)
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn response(_: &[u8]) {
        panic!("fermion: a response can only be sent inside Fermion (wasm32-wasi)")
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn send(_: &[u8]) -> Result<Vec<u8>, Error> {
        Err(Error::unavailable())
    }
}

#[cfg(test)]
mod tests;
