//! Header: HTTP header fields, as Go's http.Header offers them (get, values, set, add,
//! del), kept in one reused string instead of a map of vectors: a handler touches a
//! few headers, and a reused writer then allocates nothing per request. A request's
//! header is decoded from the host's buffer only when the handler first asks for it
//! ([`Fields`]), so a handler that reads no header pays nothing for them.

use std::cell::UnsafeCell;
use std::fmt;
use std::sync::Once;

use crate::abi;

/// HTTP header fields. Names compare case-insensitively; `set` and `add` store them in
/// canonical form ("content-type" becomes "Content-Type"), as Go's Header does. A
/// repeated name is repeated entries, in the order they were added.
#[derive(Clone, Default)]
pub struct Header {
    buf: String,
    entries: Vec<Entry>,
}

#[derive(Clone, Copy)]
struct Entry {
    name: (u32, u32),  // start, end in buf
    value: (u32, u32), // start, end in buf
}

impl Header {
    /// An empty header set.
    pub fn new() -> Header {
        Header::default()
    }

    /// The first value of `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries.iter().find(|e| self.slice(e.name).eq_ignore_ascii_case(name)).map(|e| self.slice(e.value))
    }

    /// Every value of `name`, in order.
    pub fn values<'h>(&'h self, name: &'h str) -> impl Iterator<Item = &'h str> + 'h {
        self.entries
            .iter()
            .filter(move |e| self.slice(e.name).eq_ignore_ascii_case(name))
            .map(move |e| self.slice(e.value))
    }

    /// Whether `name` has a value.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Replaces the values of `name` with `value`.
    pub fn set(&mut self, name: &str, value: &str) {
        self.del(name);
        self.add(name, value);
    }

    /// Adds `value` to the values of `name`.
    pub fn add(&mut self, name: &str, value: &str) {
        let start = self.buf.len();
        push_canonical(&mut self.buf, name);
        let name = (start as u32, self.buf.len() as u32);
        self.push_value(name, value);
    }

    /// Removes every value of `name`.
    pub fn del(&mut self, name: &str) {
        if self.entries.is_empty() {
            return; // set on a fresh response, the common case
        }
        let buf = &self.buf;
        self.entries.retain(|e| !slice(buf, e.name).eq_ignore_ascii_case(name));
    }

    /// The number of entries (a name with two values counts twice).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry as (name, value), in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.entries.iter().map(move |e| (self.slice(e.name), self.slice(e.value)))
    }

    /// Removes every entry, keeping the memory for the next use.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.entries.clear();
    }

    /// Adds an entry whose name is taken as it comes: the host sends names canonical.
    pub(crate) fn add_raw(&mut self, name: &[u8], value: &[u8]) {
        let start = self.buf.len();
        push_lossy(&mut self.buf, name);
        let name = (start as u32, self.buf.len() as u32);
        let start = self.buf.len();
        push_lossy(&mut self.buf, value);
        self.entries.push(Entry { name, value: (start as u32, self.buf.len() as u32) });
    }

    fn push_value(&mut self, name: (u32, u32), value: &str) {
        let start = self.buf.len();
        self.buf.push_str(value);
        self.entries.push(Entry { name, value: (start as u32, self.buf.len() as u32) });
    }

    fn slice(&self, r: (u32, u32)) -> &str {
        slice(&self.buf, r)
    }

    /// The bytes the entries take in the ABI's encoding: a length and the bytes for
    /// each name and value.
    pub(crate) fn encoded_len(&self) -> usize {
        self.entries.iter().map(|e| 8 + (e.name.1 - e.name.0) as usize + (e.value.1 - e.value.0) as usize).sum()
    }

    /// Calls f with every entry's name and value, in order: `iter` without the
    /// iterator, whose `next` the compiler leaves as a call per entry.
    #[inline]
    pub(crate) fn for_each(&self, mut f: impl FnMut(&str, &str)) {
        for e in &self.entries {
            f(self.slice(e.name), self.slice(e.value));
        }
    }

    /// The memory kept for entries, to bound what a reused header holds on to.
    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity() + self.entries.capacity() * std::mem::size_of::<Entry>()
    }
}

/// A request's header fields: built by a test, or still in the wire format the host
/// wrote (the section of the request after its header count), decoded into the
/// instance's reused [`Slot`] on first access.
#[derive(Clone)]
pub(crate) enum Fields<'a> {
    Owned(Header),
    Wire { raw: &'a [u8], n: usize, slot: &'a Slot },
}

impl<'a> Fields<'a> {
    /// The header, decoding it first if nothing has.
    pub(crate) fn get(&self) -> &Header {
        match self {
            Fields::Owned(h) => h,
            Fields::Wire { raw, n, slot } => slot.decode(raw, *n),
        }
    }

    /// The header to change (a test's `with_header`): a decoded copy for a request
    /// that came from the host, whose slot is shared by every clone of it.
    pub(crate) fn to_mut(&mut self) -> &mut Header {
        if let Fields::Wire { .. } = self {
            *self = Fields::Owned(self.get().clone());
        }
        match self {
            Fields::Owned(h) => h,
            Fields::Wire { .. } => unreachable!("replaced by an owned header above"),
        }
    }
}

impl fmt::Debug for Fields<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.get().fmt(f)
    }
}

/// Where a request's header is decoded: one per instance, kept between requests so
/// decoding reuses its memory. A `Once` guards the decoding rather than a `Cell`, so
/// [`crate::Request`] stays `Sync` as it was when it held a decoded header; on
/// wasm32-wasi (one thread) it costs a load when the header is read.
pub(crate) struct Slot {
    once: Once,
    header: UnsafeCell<Header>,
}

impl Default for Slot {
    fn default() -> Slot {
        Slot { once: Once::new(), header: UnsafeCell::new(Header::new()) }
    }
}

// SAFETY: the header is written only inside `once.call_once`, which runs one closure
// and makes every other caller wait for it, and read only after that call returns.
unsafe impl Sync for Slot {}

impl Slot {
    /// Readies the slot for the next request: its header is decoded again on first
    /// access. The exclusive borrow proves no request still reads the last one.
    /// A header over `kept` bytes (a request with huge fields) is let go, so it does
    /// not pin its memory for the instance's life.
    pub(crate) fn reset(&mut self, kept: usize) {
        self.once = Once::new();
        let h = self.header.get_mut();
        if h.capacity() > kept {
            *h = Header::new();
        }
    }

    /// Whether the current request's header has been decoded (for tests).
    #[cfg(test)]
    pub(crate) fn decoded(&self) -> bool {
        self.once.is_completed()
    }

    /// The memory the slot keeps (for tests).
    #[cfg(test)]
    pub(crate) fn kept(&mut self) -> usize {
        self.header.get_mut().capacity()
    }

    /// The header of raw (n entries, in the wire format, already checked whole by the
    /// request's decoder), decoded on the first call after `reset`.
    fn decode(&self, raw: &[u8], n: usize) -> &Header {
        self.once.call_once(|| {
            // SAFETY: see `impl Sync for Slot`: this closure is the only writer, and no
            // reader has a reference until call_once has returned.
            let h = unsafe { &mut *self.header.get() };
            h.clear();
            let mut d = abi::Decoder::new(raw);
            if raw.is_ascii() {
                // Fields and length prefixes all ASCII (every field under 128 bytes):
                // one copy of the section, and entries that point into it past the
                // prefixes, instead of a UTF-8 check and a copy per name and value.
                // SAFETY: ASCII is UTF-8.
                h.buf.push_str(unsafe { std::str::from_utf8_unchecked(raw) });
                let at = |f: &[u8]| {
                    let start = (f.as_ptr() as usize - raw.as_ptr() as usize) as u32;
                    (start, start + f.len() as u32)
                };
                for _ in 0..n {
                    match (d.bytes(), d.bytes()) {
                        (Ok(name), Ok(value)) => h.entries.push(Entry { name: at(name), value: at(value) }),
                        _ => break, // cannot happen: the request's decoder walked these fields
                    }
                }
                return;
            }
            for _ in 0..n {
                match (d.bytes(), d.bytes()) {
                    (Ok(name), Ok(value)) => h.add_raw(name, value),
                    _ => break, // cannot happen: the request's decoder walked these fields
                }
            }
        });
        // SAFETY: call_once has returned, so the header is written and nothing writes
        // it again until `reset`, which needs the slot exclusively.
        unsafe { &*self.header.get() }
    }
}

fn slice(buf: &str, r: (u32, u32)) -> &str {
    &buf[r.0 as usize..r.1 as usize]
}

/// Appends b, replacing invalid UTF-8 (a header value may carry any byte) with U+FFFD.
fn push_lossy(buf: &mut String, b: &[u8]) {
    match std::str::from_utf8(b) {
        Ok(s) => buf.push_str(s),
        Err(_) => buf.push_str(&String::from_utf8_lossy(b)),
    }
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl PartialEq for Header {
    fn eq(&self, other: &Header) -> bool {
        self.iter().eq(other.iter())
    }
}

/// The canonical form of a header name, as Go's CanonicalHeaderKey makes it: the first
/// letter and every letter after a hyphen upper case, the rest lower case. A name with
/// a byte that is not a token character is returned unchanged.
pub fn canonical_header_key(name: &str) -> String {
    let mut s = String::with_capacity(name.len());
    push_canonical(&mut s, name);
    s
}

/// Appends name in canonical form. Handlers mostly write names already canonical
/// ("Content-Type"), so one pass checks that and the name is then copied whole; only
/// a name in another case is rewritten, in place, byte by byte.
fn push_canonical(buf: &mut String, name: &str) {
    let mut canonical = true;
    let mut upper = true;
    for b in name.bytes() {
        if !is_token(b) {
            buf.push_str(name);
            return;
        }
        canonical &= b == if upper { b.to_ascii_uppercase() } else { b.to_ascii_lowercase() };
        upper = b == b'-';
    }
    let start = buf.len();
    buf.push_str(name);
    if canonical {
        return;
    }
    // SAFETY: every byte is a token character, ASCII, and changing the case of ASCII
    // letters keeps the string UTF-8.
    let bytes = unsafe { buf.as_bytes_mut() };
    let mut upper = true;
    for b in &mut bytes[start..] {
        *b = if upper { b.to_ascii_uppercase() } else { b.to_ascii_lowercase() };
        upper = *b == b'-';
    }
}

/// Whether b may appear in a header name (RFC 9110's tchar).
fn is_token(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical() {
        for (name, want) in [
            ("content-type", "Content-Type"),
            ("X-FORWARDED-FOR", "X-Forwarded-For"),
            ("x", "X"),
            ("", ""),
            ("bad name", "bad name"),
            ("a--b", "A--B"),
            ("Content-Type", "Content-Type"),
            ("content-TYPE", "Content-Type"),
            ("-x", "-X"),
            ("1st-name", "1st-Name"),
            ("x-\u{e9}t\u{e9}", "x-\u{e9}t\u{e9}"),
            ("a_b.c~d|e", "A_b.c~d|e"),
        ] {
            assert_eq!(canonical_header_key(name), want, "{}", name);
        }
    }

    #[test]
    fn set_add_del() {
        let mut h = Header::new();
        h.add("accept", "a");
        h.add("Accept", "b");
        h.set("content-type", "text/plain");
        assert_eq!(h.values("ACCEPT").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(h.get("Content-Type"), Some("text/plain"));
        h.set("Content-Type", "text/html");
        assert_eq!(h.values("content-type").collect::<Vec<_>>(), ["text/html"]);
        h.del("accept");
        assert_eq!(h.get("Accept"), None);
        assert_eq!(h.iter().collect::<Vec<_>>(), [("Content-Type", "text/html")]);
        h.clear();
        assert!(h.is_empty());
        // A name rewritten in place after other entries keeps their bytes intact.
        h.add("X-Kept", "v");
        h.add("x-LATER", "w");
        assert_eq!(h.iter().collect::<Vec<_>>(), [("X-Kept", "v"), ("X-Later", "w")]);
    }

    #[test]
    fn lossy_values() {
        let mut h = Header::new();
        h.add_raw(b"X-Bin", b"a\xffb");
        assert_eq!(h.get("x-bin"), Some("a\u{fffd}b"));
    }
}
