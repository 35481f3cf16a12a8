//! The bare hyper server: the ceiling for HTTP reads.
//!
//! The same code as the shared `floors/src/bin/hello.rs` (hyper 1.x, HTTP/1.1,
//! one task per connection, `TCP_NODELAY`, a fixed JSON body from a static
//! buffer), except that the body is read from a file so it can be exactly the
//! bytes tribune answered, and the address is a parameter. Run as
//! `tribune-bench bare PORT BODY_FILE [THREADS]`.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{server::conn::http1, service::service_fn, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Serves `body` to every request on 127.0.0.1:`port` with `threads` worker
/// threads, forever.
pub fn serve(port: u16, body: Vec<u8>, threads: usize) -> anyhow::Result<()> {
    // Leaked once, so every response clones a static `Bytes` like hello.rs's
    // `Bytes::from_static` (no reference count to touch).
    let body: &'static [u8] = Box::leak(body.into_boxed_slice());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let l = TcpListener::bind(("127.0.0.1", port)).await?;
        loop {
            let (s, _) = l.accept().await?;
            s.set_nodelay(true).ok();
            tokio::spawn(async move {
                let handle = move |_r: Request<hyper::body::Incoming>| async move {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from_static(body)))
                            // A static header name and value cannot fail.
                            .unwrap_or_default(),
                    )
                };
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(s), service_fn(handle))
                    .await;
            });
        }
    })
}
