//! hello-rust is the smallest Fermion function in Rust: it answers every request with a
//! greeting, like examples/hello does in Go.

use fermion::{Request, ResponseWriter};

fermion::handler!(handle);

fn handle(w: &mut ResponseWriter, _: &Request) {
    w.header().set("Content-Type", "text/plain; charset=utf-8");
    w.write(b"Hello from Fermion!\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    // The handler runs natively under cargo test; fermion run serves it in wasm.
    #[test]
    fn greets() {
        let mut w = ResponseWriter::new();
        handle(&mut w, &Request::new("GET", "/hello-rust"));
        assert_eq!((w.status(), w.body()), (200, &b"Hello from Fermion!\n"[..]));
    }
}
