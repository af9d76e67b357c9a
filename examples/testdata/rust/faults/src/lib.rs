//! The Rust SDK's fault guest: each path makes the handler misbehave in one way, so the
//! tests can check that the host answers it as it answers the Go SDK's guests.
//!
//!   /panic         panics (with ?panic=1; otherwise answers "ok")
//!   /twice         calls write_header twice (201, then 500), sets one header twice
//!                  and adds another twice
//!   /echo          answers with the request's body and its length
//!   /dial?url=U    sends a GET to U through the host and relays the answer, or
//!                  answers 502 with the host's error
//!   /inspect       answers with how the request arrived, one field a line
//!   /loop          spins until the host stops it (with ?loop=1; otherwise "ok")
//!   /alloc?mib=N   allocates and touches N MiB, then answers "ok"

use fermion::{outbound, Request, ResponseWriter};

fermion::handler!(handle);

fn handle(w: &mut ResponseWriter, r: &Request) {
    match r.path() {
        "/panic" => {
            if r.query_value("panic").is_some() {
                panic!("rust fault guest: panic requested");
            }
            w.write(b"ok");
        }
        "/twice" => {
            w.header().set("X-Once", "first");
            w.header().set("x-once", "second");
            w.header().add("X-Many", "a");
            w.header().add("X-Many", "b");
            w.write_header(201);
            w.write_header(500);
            w.write(b"twice");
        }
        "/echo" => {
            w.header().set("X-Body-Length", &r.body().len().to_string());
            w.write(r.body());
        }
        "/dial" => {
            let url = r.query_value("url").unwrap_or_default();
            match outbound::get(&url) {
                Ok(resp) => {
                    if let Some(ct) = resp.header.get("Content-Type") {
                        w.header().set("Content-Type", ct);
                    }
                    w.write_header(resp.status);
                    w.write(&resp.body);
                }
                Err(e) => fermion::error(w, &e.to_string(), 502),
            }
        }
        "/inspect" => {
            w.header().set("Content-Type", "text/plain; charset=utf-8");
            write!(w, "method={}\nuri={}\npath={}\nquery={}\n", r.method(), r.uri(), r.path(), r.query());
            write!(w, "q={:?}\nhost={}\nremote_ip={}\n", r.query_value("q"), r.host(), r.remote_addr().rsplit_once(':').map_or("", |(ip, _)| ip));
            let multi: Vec<&str> = r.header().values("x-multi").collect();
            write!(w, "x-multi={:?}\nx-bin={:?}\nheaders={}\nbody={}\n", multi, r.header().get("X-Bin"), r.header().len(), r.body().len());
        }
        "/loop" => {
            if r.query_value("loop").is_some() {
                let mut n: u64 = 0;
                loop {
                    // A volatile write keeps the loop from being optimised away.
                    unsafe { std::ptr::write_volatile(&mut n, n.wrapping_add(1)) };
                }
            }
            w.write(b"ok");
        }
        "/alloc" => {
            let mib: usize = r.query_value("mib").and_then(|v| v.parse().ok()).unwrap_or(1);
            let block = vec![1u8; mib << 20];
            write!(w, "ok {}", block.iter().map(|&b| b as usize).sum::<usize>() >> 20);
        }
        _ => fermion::error(w, "404 page not found", 404),
    }
}
