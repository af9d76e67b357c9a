//! Native tests of the guest half: a request encoded as the host encodes it (see
//! api/abi's AppendRequest) goes through serve and a handler, and the response comes
//! out encoded as the host decodes it.

use super::__private::serve;
use super::*;

fn encode_request(method: &str, uri: &str, headers: &[(&str, &[u8])], body: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    abi::put_bytes(&mut b, method.as_bytes());
    abi::put_bytes(&mut b, uri.as_bytes());
    abi::put_bytes(&mut b, b"example.com");
    abi::put_bytes(&mut b, b"10.0.0.1:5555");
    abi::put_u32(&mut b, headers.len() as u32);
    for (name, value) in headers {
        abi::put_bytes(&mut b, name.as_bytes());
        abi::put_bytes(&mut b, value);
    }
    abi::put_bytes(&mut b, body);
    b
}

struct Decoded {
    status: u32,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn decode_response(b: &[u8]) -> Decoded {
    let mut d = abi::Decoder::new(b);
    let status = d.u32().unwrap();
    let n = d.count().unwrap();
    let mut headers = Vec::new();
    for _ in 0..n {
        let name = String::from_utf8(d.bytes().unwrap().to_vec()).unwrap();
        let value = String::from_utf8(d.bytes().unwrap().to_vec()).unwrap();
        headers.push((name, value));
    }
    let body = d.bytes().unwrap().to_vec();
    d.done().unwrap();
    Decoded { status, headers, body }
}

fn run(input: &[u8], h: Handler) -> (i32, Vec<u8>) {
    let (mut header, mut rw, mut out) = (header::Slot::default(), ResponseWriter::new(), Vec::new());
    respond(input, &mut header, &mut rw, &mut out, h)
}

/// serve's result code and a copy of its encoded response.
fn respond(input: &[u8], header: &mut header::Slot, rw: &mut ResponseWriter, out: &mut Vec<u8>, h: Handler) -> (i32, Vec<u8>) {
    match serve(input, header, rw, out, h) {
        Ok(resp) => (abi::HANDLE_OK, resp.to_vec()),
        Err(code) => (code, Vec::new()),
    }
}

fn echo(w: &mut ResponseWriter, r: &Request) {
    w.header().set("content-type", "text/plain");
    w.header().add("X-Seen", r.header().get("Accept").unwrap_or("-"));
    write!(w, "{} {} {} {} q={:?} ", r.method(), r.path(), r.host(), r.remote_addr(), r.query_value("q"));
    w.write(r.body());
}

#[test]
fn serve_round_trip() {
    let input = encode_request("POST", "/a/b?x=1&q=a+b%21", &[("Accept", b"text/html"), ("Accept", b"*/*")], b"BODY");
    let (code, out) = run(&input, echo);
    assert_eq!(code, abi::HANDLE_OK);
    let resp = decode_response(&out);
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.headers,
        [("Content-Type".to_string(), "text/plain".to_string()), ("X-Seen".to_string(), "text/html".to_string())]
    );
    assert_eq!(String::from_utf8(resp.body).unwrap(), "POST /a/b example.com 10.0.0.1:5555 q=Some(\"a b!\") BODY");
}

#[test]
fn write_header_twice_keeps_the_first() {
    fn twice(w: &mut ResponseWriter, _: &Request) {
        w.write_header(201);
        w.write_header(500);
        w.write(b"x");
    }
    let (_, out) = run(&encode_request("GET", "/", &[], b""), twice);
    assert_eq!(decode_response(&out).status, 201);
    fn late(w: &mut ResponseWriter, _: &Request) {
        w.write(b"x");
        w.write_header(404);
    }
    let (_, out) = run(&encode_request("GET", "/", &[], b""), late);
    assert_eq!(decode_response(&out).status, 200);
}

#[test]
fn malformed_requests_are_refused() {
    let good = encode_request("GET", "/", &[("A", b"b")], b"xyz");
    for cut in 0..good.len() {
        let (code, _) = run(&good[..cut], echo);
        assert_eq!(code, abi::HANDLE_BAD_INPUT, "truncated at {}", cut);
    }
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(run(&trailing, echo).0, abi::HANDLE_BAD_INPUT);
    let mut huge = Vec::new();
    for _ in 0..4 {
        abi::put_bytes(&mut huge, b"");
    }
    abi::put_u32(&mut huge, u32::MAX);
    assert_eq!(run(&huge, echo).0, abi::HANDLE_BAD_INPUT);
}

#[test]
fn invalid_utf8_is_replaced() {
    fn show(w: &mut ResponseWriter, r: &Request) {
        write!(w, "{}|{}", r.uri(), r.header().get("X-Bin").unwrap_or(""));
    }
    let input = encode_request("GET", "/\u{e9}", &[("X-Bin", b"a\xffb")], b"");
    let (_, out) = run(&input, show);
    assert_eq!(String::from_utf8(decode_response(&out).body).unwrap(), "/\u{e9}|a\u{fffd}b");
}

#[test]
fn writer_is_reused_clean() {
    let (mut header, mut rw, mut out) = (header::Slot::default(), ResponseWriter::new(), Vec::new());
    fn big(w: &mut ResponseWriter, _: &Request) {
        w.write_header(418);
        w.header().set("X-Big", "1");
        w.write(&vec![b'a'; 1 << 20]);
    }
    fn small(w: &mut ResponseWriter, _: &Request) {
        w.write(b"ok");
    }
    fn read_header(w: &mut ResponseWriter, r: &Request) {
        w.write(&[r.header().len() as u8]);
    }
    let huge = vec![b'h'; 1 << 20];
    respond(&encode_request("GET", "/", &[("X-Huge", &huge)], b""), &mut header, &mut rw, &mut out, read_header);
    assert!(header.kept() > MAX_KEPT);
    let input = encode_request("GET", "/", &[], b"");
    respond(&input, &mut header, &mut rw, &mut out, big);
    let resp = decode_response(&respond(&input, &mut header, &mut rw, &mut out, small).1);
    assert_eq!((resp.status, resp.headers.len(), &resp.body[..]), (200, 0, &b"ok"[..]));
    assert!(rw.body.capacity() <= MAX_KEPT && out.capacity() <= MAX_KEPT, "kept {} and {} bytes", rw.body.capacity(), out.capacity());
    assert!(header.kept() <= MAX_KEPT, "the request's header slot kept {} bytes", header.kept());
}

#[test]
fn error_reply() {
    let mut w = ResponseWriter::new();
    w.header().set("Content-Length", "99");
    error(&mut w, "no such thing", 404);
    assert_eq!((w.status(), w.body()), (404, &b"no such thing\n"[..]));
    assert_eq!(w.header().get("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(w.header().get("Content-Length"), None);
}

#[test]
fn request_for_tests() {
    let r = Request::new("GET", "/p?a=1&a=2&b").with_header("accept", "x").with_body("hi");
    assert_eq!((r.path(), r.query(), r.header().get("Accept"), r.body()), ("/p", "a=1&a=2&b", Some("x"), &b"hi"[..]));
    assert_eq!(r.query_value("a").as_deref(), Some("1"));
    assert_eq!(r.query_value("b").as_deref(), Some(""));
    assert_eq!(r.query_value("c"), None);
    assert_eq!(unescape("%zz%4"), "%zz%4");
}

#[test]
fn header_decoded_only_when_read() {
    fn no_header(w: &mut ResponseWriter, r: &Request) {
        w.write_str(r.path());
    }
    fn header_twice(w: &mut ResponseWriter, r: &Request) {
        let first = r.header().get("X-A").unwrap_or("-");
        let again = r.header().values("x-a").collect::<Vec<_>>().join(",");
        write!(w, "{}|{}|{}", first, again, r.header().len());
    }
    let (mut slot, mut rw, mut out) = (header::Slot::default(), ResponseWriter::new(), Vec::new());
    let one = encode_request("GET", "/one", &[("X-A", b"1"), ("X-A", b"2"), ("X-B", b"3")], b"");
    let out_ = respond(&one, &mut slot, &mut rw, &mut out, no_header).1;
    assert!(!slot.decoded(), "a handler that read no header had them decoded");
    assert_eq!(decode_response(&out_).body, b"/one");
    let out_ = respond(&one, &mut slot, &mut rw, &mut out, header_twice).1;
    assert!(slot.decoded());
    assert_eq!(String::from_utf8(decode_response(&out_).body).unwrap(), "1|1,2|3");
    // The next request decodes its own fields into the reused slot: nothing of the
    // last request's header shows, whether it has fewer fields or none.
    let two = encode_request("GET", "/two", &[("X-A", b"9")], b"");
    let out_ = respond(&two, &mut slot, &mut rw, &mut out, header_twice).1;
    assert_eq!(String::from_utf8(decode_response(&out_).body).unwrap(), "9|9|1");
    let none = encode_request("GET", "/three", &[], b"");
    let out_ = respond(&none, &mut slot, &mut rw, &mut out, header_twice).1;
    assert_eq!(String::from_utf8(decode_response(&out_).body).unwrap(), "-||0");
}

#[test]
fn host_request_clones_and_changes() {
    fn clone_and_add(w: &mut ResponseWriter, r: &Request) {
        let c = r.clone();
        let changed = r.clone().with_header("X-New", "n");
        write!(w, "{:?} {:?} {:?}", c.header().get("X-A"), changed.header().get("X-New"), r.header().get("X-New"));
        write!(w, " {:?}", changed.header());
    }
    let input = encode_request("GET", "/", &[("X-A", b"a")], b"");
    let (_, out) = run(&input, clone_and_add);
    assert_eq!(
        String::from_utf8(decode_response(&out).body).unwrap(),
        "Some(\"a\") Some(\"n\") None [(\"X-A\", \"a\"), (\"X-New\", \"n\")]"
    );
}

#[test]
fn request_stays_send_and_sync() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Request<'static>>();
}

#[test]
fn invalid_utf8_in_request_line_is_replaced() {
    fn show(w: &mut ResponseWriter, r: &Request) {
        write!(w, "{}|{}|{}", r.method(), r.uri(), r.header().get("X-\u{fffd}").unwrap_or(""));
    }
    let mut input = Vec::new();
    abi::put_bytes(&mut input, b"G\xffT");
    abi::put_bytes(&mut input, "/\u{e9}t\u{e9}".as_bytes());
    abi::put_bytes(&mut input, b"h");
    abi::put_bytes(&mut input, b"r");
    abi::put_u32(&mut input, 1);
    abi::put_bytes(&mut input, b"X-\xc3");
    abi::put_bytes(&mut input, b"v\xc3");
    abi::put_bytes(&mut input, b"");
    let (code, out) = run(&input, show);
    assert_eq!(code, abi::HANDLE_OK);
    assert_eq!(String::from_utf8(decode_response(&out).body).unwrap(), "G\u{fffd}T|/\u{e9}t\u{e9}|v\u{fffd}");
}

#[test]
fn request_line_checked_in_one_pass_or_per_field() {
    fn show(w: &mut ResponseWriter, r: &Request) {
        write!(w, "{}|{}|{}|{}", r.method(), r.uri(), r.host(), r.remote_addr());
    }
    let long = |n: usize| format!("/{}", "a".repeat(n - 1));
    let mut straddle = Vec::new();
    // The method ends with a lead byte and the URI's length (169) starts with 0xA9:
    // together they are a valid "é", so the one pass over the head succeeds, yet the
    // method alone is not UTF-8.
    abi::put_bytes(&mut straddle, b"G\xc3");
    abi::put_bytes(&mut straddle, long(169).as_bytes());
    abi::put_bytes(&mut straddle, "h\u{e9}".as_bytes());
    abi::put_bytes(&mut straddle, b"r");
    abi::put_u32(&mut straddle, 0);
    abi::put_bytes(&mut straddle, b"");
    for (name, input, want) in [
        ("field ending mid-character", straddle, format!("G\u{fffd}|{}|h\u{e9}|r", long(169))),
        // A length of 200 (0xC8) fails the one pass: each field is checked alone.
        ("long URI", encode_request("GET", &long(200), &[], b""), format!("GET|{}|example.com|10.0.0.1:5555", long(200))),
        ("non-ASCII URI", encode_request("GET", "/\u{e9}", &[], b""), "GET|/\u{e9}|example.com|10.0.0.1:5555".to_string()),
    ] {
        let (code, out) = run(&input, show);
        assert_eq!(code, abi::HANDLE_OK, "{}", name);
        assert_eq!(String::from_utf8(decode_response(&out).body).unwrap(), want, "{}", name);
    }
}

#[test]
fn header_decoded_whole_or_per_field() {
    fn show(w: &mut ResponseWriter, r: &Request) {
        write!(w, "{:?}", r.header());
    }
    let long = "v".repeat(200);
    for (name, headers, want) in [
        ("ASCII", vec![("A", b"1".to_vec()), ("B-C", b"two".to_vec())], r#"[("A", "1"), ("B-C", "two")]"#.to_string()),
        // A 200-byte value's length prefix is not ASCII: each field is decoded alone.
        ("long value", vec![("A", long.clone().into_bytes()), ("B", b"2".to_vec())], format!(r#"[("A", "{}"), ("B", "2")]"#, long)),
        ("UTF-8 value", vec![("A", "\u{e9}".as_bytes().to_vec())], "[(\"A\", \"\u{e9}\")]".to_string()),
        ("none", vec![], "[]".to_string()),
    ] {
        let fields: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, &v[..])).collect();
        let (code, out) = run(&encode_request("GET", "/", &fields, b"body"), show);
        assert_eq!(code, abi::HANDLE_OK, "{}", name);
        assert_eq!(String::from_utf8(decode_response(&out).body).unwrap(), want, "{}", name);
    }
}

/// Every way the SDK now takes a request apart (one pass over the head, the header
/// decoded lazily, whole or per field) against the plain reading: each field on its
/// own, lossy. The fields are drawn from bytes that exercise each path: ASCII, UTF-8
/// characters, invalid bytes, lead bytes at a field's end, and lengths over 127.
#[test]
fn decoding_matches_per_field_reading() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let long = [b'l'; 140]; // a length of 140 (0x8C) starts with a continuation byte
    let pieces: [&[u8]; 8] = [b"a", b"Z-", b"\xc3\xa9", &long, b"\xc3", b"\xff", b"\xa9", b"0123456789abcdef0123456789abcdef"];
    // A third of the cases are short ASCII only (the whole-head and whole-section
    // paths), a third valid UTF-8 but for a lead byte that may end a field, before a
    // field of 140 bytes or more (a character straddling a field's end and a prefix),
    // and a third anything.
    let field = |next: &mut dyn FnMut(usize) -> usize, mode: usize| {
        let mut f = Vec::new();
        let (count, kinds) = [(4, 2), (3, 4), (12, pieces.len())][mode];
        for _ in 0..next(count) {
            f.extend_from_slice(pieces[next(kinds)]);
        }
        if mode == 1 && next(2) == 0 {
            f.push(0xc3);
        }
        f
    };
    fn lossy(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }
    fn show(w: &mut ResponseWriter, r: &Request) {
        write!(w, "{}\n{}\n{}\n{}\n", r.method(), r.uri(), r.host(), r.remote_addr());
        for (name, value) in r.header().iter() {
            write!(w, "{}: {}\n", name, value);
        }
        w.write(r.body());
    }
    for case in 0..3000 {
        let mode = case % 3;
        let head: Vec<Vec<u8>> = (0..4).map(|_| field(&mut next, mode)).collect();
        let headers: Vec<(Vec<u8>, Vec<u8>)> = (0..next(4)).map(|_| (field(&mut next, mode), field(&mut next, mode))).collect();
        let mut input = Vec::new();
        for f in &head {
            abi::put_bytes(&mut input, f);
        }
        abi::put_u32(&mut input, headers.len() as u32);
        for (n, v) in &headers {
            abi::put_bytes(&mut input, n);
            abi::put_bytes(&mut input, v);
        }
        abi::put_bytes(&mut input, b"B");
        let mut want = String::new();
        for f in &head {
            want += &lossy(f);
            want.push('\n');
        }
        for (n, v) in &headers {
            want += &format!("{}: {}\n", lossy(n), lossy(v));
        }
        want.push('B');
        let (code, out) = run(&input, show);
        assert_eq!(code, abi::HANDLE_OK, "case {}", case);
        assert_eq!(String::from_utf8(decode_response(&out).body).unwrap(), want, "case {}: {:?}", case, input);
    }
}

#[test]
fn response_head_in_room_or_copied() {
    fn fields(n: usize, len: usize) -> impl Fn(&mut ResponseWriter) {
        move |w: &mut ResponseWriter| {
            for i in 0..n {
                w.header().add(&format!("X-F{}", i), &"v".repeat(len));
            }
        }
    }
    let (mut slot, mut rw, mut out) = (header::Slot::default(), ResponseWriter::new(), Vec::new());
    let input = encode_request("GET", "/", &[], b"");
    // Heads under, at and over HEAD_ROOM, in turns, through one reused writer: with
    // one field of name X-F0 the head is 12 + 8 + 4 + len bytes.
    for (name, n, len, body) in [
        ("small", 1, 10, &b"hello"[..]),
        ("exactly the room", 1, HEAD_ROOM - 24, &b"b"[..]),
        ("one byte over", 1, HEAD_ROOM - 23, &b"b"[..]),
        ("many fields", 40, 20, &b"many"[..]),
        ("no body", 1, 3, &b""[..]),
        ("small again", 2, 1, &b"x"[..]),
    ] {
        thread_local!(static CASE: std::cell::RefCell<(usize, usize, Vec<u8>)> = std::cell::RefCell::new((0, 0, Vec::new())));
        CASE.with(|c| *c.borrow_mut() = (n, len, body.to_vec()));
        fn h(w: &mut ResponseWriter, _: &Request) {
            CASE.with(|c| {
                let (n, len, body) = c.borrow().clone();
                fields(n, len)(w);
                w.write_header(202);
                w.write(&body);
            })
        }
        let (code, enc) = respond(&input, &mut slot, &mut rw, &mut out, h);
        assert_eq!(code, abi::HANDLE_OK, "{}", name);
        let resp = decode_response(&enc);
        assert_eq!((resp.status, resp.headers.len(), &resp.body[..]), (202, n, body), "{}", name);
        for (i, (k, v)) in resp.headers.iter().enumerate() {
            assert_eq!((k.as_str(), v.len()), (format!("X-F{}", i).as_str(), len), "{}", name);
        }
        assert_eq!(rw.body(), body, "{}", name);
    }
}
