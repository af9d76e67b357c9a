//! Outbound HTTP through the host, the only network a function has. The host sends
//! a request only to destinations in the manifest's `allowed_outbound_hosts`, within
//! its outbound timeout; a refusal, a timeout or a network failure comes back as
//! `send`'s error, a response with any status as `Ok`.

use std::fmt;

use crate::abi::{self, Decoder, DecodeError};
use crate::Header;

/// A request to send with [`send`].
#[derive(Clone, Debug)]
pub struct Request {
    /// The method; empty means GET.
    pub method: String,
    /// The absolute URL to send to: `scheme://host[:port]/path?query`.
    pub url: String,
    pub header: Header,
    pub body: Vec<u8>,
}

impl Request {
    /// A request with no header fields and no body.
    pub fn new(method: &str, url: &str) -> Request {
        Request { method: method.to_string(), url: url.to_string(), header: Header::new(), body: Vec::new() }
    }

    /// Adds a header field.
    pub fn with_header(mut self, name: &str, value: &str) -> Request {
        self.header.add(name, value);
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }
}

/// The response to a request sent with [`send`], received whole.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub header: Header,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text, with invalid UTF-8 replaced by U+FFFD.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }
}

/// Why an outbound request failed: the host's refusal (a destination outside
/// `allowed_outbound_hosts`, say), a timeout, a network error, or a bad URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    msg: String,
}

impl Error {
    fn new(msg: String) -> Error {
        Error { msg }
    }

    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    pub(crate) fn unavailable() -> Error {
        Error::new("outbound HTTP is only available when running inside Fermion (wasm32-wasi)".to_string())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

/// Sends `req` through the host and returns its response.
pub fn send(req: &Request) -> Result<Response, Error> {
    let method = if req.method.is_empty() { "GET" } else { req.method.as_str() };
    let host = match url_host(&req.url) {
        Some(h) => h,
        None => {
            return Err(Error::new(format!(
                "fermion: {:?} is not an absolute URL; write scheme://host/path",
                redact(&req.url)
            )))
        }
    };
    let mut enc = Vec::with_capacity(64 + req.url.len() + req.body.len());
    abi::put_bytes(&mut enc, method.as_bytes());
    abi::put_bytes(&mut enc, req.url.as_bytes());
    abi::put_bytes(&mut enc, host.as_bytes());
    abi::put_bytes(&mut enc, b""); // remote address: not sent
    abi::put_u32(&mut enc, req.header.len() as u32);
    for (name, value) in req.header.iter() {
        abi::put_bytes(&mut enc, name.as_bytes());
        abi::put_bytes(&mut enc, value.as_bytes());
    }
    abi::put_bytes(&mut enc, &req.body);
    let result = crate::host::send(&enc)?;
    match decode_result(&result) {
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(msg)) => Err(Error::new(format!("outbound {} {}: {}", method, redact(&req.url), msg))),
        Err(e) => Err(Error::new(format!("decode outbound response: {:?}", e))),
    }
}

/// Sends a GET request to `url`.
pub fn get(url: &str) -> Result<Response, Error> {
    send(&Request::new("GET", url))
}

/// Sends a POST request with the given content type and body.
pub fn post(url: &str, content_type: &str, body: &[u8]) -> Result<Response, Error> {
    send(&Request::new("POST", url).with_header("Content-Type", content_type).with_body(body))
}

/// Decodes an outbound result: a response, or the host's error message.
pub(crate) fn decode_result(b: &[u8]) -> Result<Result<Response, String>, DecodeError> {
    let mut d = Decoder::new(b);
    match d.u8()? {
        abi::RESULT_OK => {
            let status = d.u32()?;
            let n = d.count()?;
            let mut header = Header::new();
            for _ in 0..n {
                let name = d.bytes()?;
                let value = d.bytes()?;
                header.add_raw(name, value);
            }
            let body = d.bytes()?.to_vec();
            d.done()?;
            Ok(Ok(Response { status: status as u16, header, body }))
        }
        abi::RESULT_ERROR => {
            let msg = String::from_utf8_lossy(d.bytes()?).into_owned();
            d.done()?;
            Ok(Err(msg))
        }
        _ => Err(DecodeError::BadTag),
    }
}

/// The authority of an absolute URL, or None when it has no scheme or host.
fn url_host(url: &str) -> Option<&str> {
    let i = url.find("://")?;
    if i == 0 || !url[..i].bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) {
        return None;
    }
    let rest = &url[i + 3..];
    let end = rest.find(|c| c == '/' || c == '?' || c == '#').unwrap_or(rest.len());
    let authority = &rest[..end];
    let host = match authority.rfind('@') {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    if host.is_empty() {
        None
    } else {
        Some(authority)
    }
}

/// The URL with any password replaced, for error messages.
fn redact(url: &str) -> String {
    if let Some(i) = url.find("://") {
        let rest = &url[i + 3..];
        let end = rest.find(|c| c == '/' || c == '?' || c == '#').unwrap_or(rest.len());
        if let Some(at) = rest[..end].rfind('@') {
            if let Some(colon) = rest[..at].find(':') {
                return format!("{}{}:xxxxx{}", &url[..i + 3], &rest[..colon], &rest[at..]);
            }
        }
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        for (url, want) in [
            ("http://127.0.0.1:8080/a", Some("127.0.0.1:8080")),
            ("https://example.com", Some("example.com")),
            ("https://example.com?x", Some("example.com")),
            ("http://u:p@h/x", Some("u:p@h")),
            ("/relative", None),
            ("http:///nohost", None),
            ("://h/x", None),
        ] {
            assert_eq!(url_host(url), want, "{}", url);
        }
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("http://u:secret@h/x"), "http://u:xxxxx@h/x");
        assert_eq!(redact("http://h/x"), "http://h/x");
    }

    #[test]
    fn results() {
        let mut ok = vec![abi::RESULT_OK];
        abi::put_u32(&mut ok, 202);
        abi::put_u32(&mut ok, 1);
        abi::put_bytes(&mut ok, b"Content-Type");
        abi::put_bytes(&mut ok, b"text/plain");
        abi::put_bytes(&mut ok, b"hi");
        let resp = decode_result(&ok).unwrap().unwrap();
        assert_eq!((resp.status, resp.header.get("content-type"), &resp.body[..]), (202, Some("text/plain"), &b"hi"[..]));

        let mut bad = vec![abi::RESULT_ERROR];
        abi::put_bytes(&mut bad, b"destination http://x is not in allowed_outbound_hosts");
        assert_eq!(decode_result(&bad).unwrap().unwrap_err(), "destination http://x is not in allowed_outbound_hosts");

        assert_eq!(decode_result(&[]).unwrap_err(), DecodeError::Short);
        assert_eq!(decode_result(&[7]).unwrap_err(), DecodeError::BadTag);
        // A header count the message cannot hold is refused before anything is reserved.
        let mut huge = vec![abi::RESULT_OK];
        abi::put_u32(&mut huge, 200);
        abi::put_u32(&mut huge, u32::MAX);
        assert_eq!(decode_result(&huge).unwrap_err(), DecodeError::TooLarge);
        let mut trailing = bad.clone();
        trailing.push(0);
        assert_eq!(decode_result(&trailing).unwrap_err(), DecodeError::Trailing);
    }

    #[test]
    fn bad_url_is_refused_before_the_host() {
        let err = get("example.com/x").unwrap_err();
        assert!(err.to_string().contains("is not an absolute URL"), "{}", err);
        assert_eq!(get("http://h/x").unwrap_err(), Error::unavailable());
    }
}
