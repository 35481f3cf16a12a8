//! Blocking queries (compat §2.1) and the shared response cache.
//!
//! A blocking read subscribes to the narrowest watch covering its result, computes the
//! result, and if the index has not moved past the client's waits for the watch or the
//! deadline. Watchers of the same query share one evaluation and one encoded body: the
//! cache holds the last body per query, valid while the store has not changed.

use super::error::ApiError;
use super::query::QueryOptions;
use super::HttpState;
use crate::state::{Store, Tables, WatchKey};
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// One evaluated query: its index, status and encoded body.
#[derive(Debug)]
pub struct Computed {
    pub index: u64,
    pub status: StatusCode,
    pub body: Bytes,
}

impl Computed {
    pub fn json<T: serde::Serialize>(index: u64, value: &T) -> Computed {
        Computed {
            index,
            status: StatusCode::OK,
            body: super::to_json(value),
        }
    }
}

type Slot = Arc<Mutex<Option<(u64, Arc<Computed>)>>>;

/// Last result per query shape.
#[derive(Default)]
pub struct Cache {
    slots: Mutex<HashMap<String, Slot>>,
}

const MAX_CACHED_QUERIES: usize = 16_384;

impl Cache {
    /// The cached result for `key` if the store has not changed since, else `f`'s, cached.
    /// Concurrent callers of the same key wait for one evaluation instead of each running it.
    pub fn get_or_compute(
        &self,
        key: &str,
        store: &Store,
        f: impl FnOnce(&Tables) -> Computed,
    ) -> Arc<Computed> {
        let slot = {
            let mut m = self.slots.lock();
            if m.len() >= MAX_CACHED_QUERIES && !m.contains_key(key) {
                m.clear();
            }
            m.entry(key.to_string()).or_default().clone()
        };
        let mut guard = slot.lock();
        let tables = store.tables();
        if let Some((at, c)) = &*guard {
            if *at == tables.last_index {
                return c.clone();
            }
        }
        let c = Arc::new(f(&tables));
        *guard = Some((tables.last_index, c.clone()));
        c
    }
}

/// Serves a blocking-capable read.
pub async fn read(
    s: &HttpState,
    opts: &QueryOptions,
    key: WatchKey,
    cache_key: String,
    f: impl Fn(&Tables) -> Computed,
) -> Result<Response, ApiError> {
    s.rpc.read_barrier(opts.consistency).await?;
    let store = s.rpc.store();
    let deadline = tokio::time::Instant::now() + opts.wait_with_jitter();
    // The result as it was when this request started waiting: a later write that moves the
    // index but leaves the result identical (another instance filtered out by `?passing` or
    // `tag=`) does not end the wait (Consul's `ErrNotChanged`, compat §2.1.7); the timeout
    // answer still carries the newest index.
    let mut waited_on: Option<Arc<Computed>> = None;
    loop {
        let mut rx = store.watch(&key);
        let c = s.cache.get_or_compute(&cache_key, store, |t| f(t));
        if opts.index == 0 || tokio::time::Instant::now() >= deadline {
            return Ok(render(s, &c, opts.pretty));
        }
        if c.index > opts.index {
            let unchanged = waited_on
                .as_ref()
                .is_some_and(|w| w.status == c.status && w.body == c.body);
            if !unchanged {
                return Ok(render(s, &c, opts.pretty));
            }
        }
        if waited_on.is_none() {
            waited_on = Some(c.clone());
        }
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    return Ok(render(s, &c, opts.pretty));
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                let c = s.cache.get_or_compute(&cache_key, store, |t| f(t));
                return Ok(render(s, &c, opts.pretty));
            }
        }
    }
}

/// The response with Consul's query-meta headers (index never 0).
pub fn render(s: &HttpState, c: &Computed, pretty: bool) -> Response {
    let body = if pretty && !c.body.is_empty() {
        super::prettify(&c.body)
    } else {
        c.body.clone()
    };
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = c.status;
    add_meta(s, r.headers_mut(), c.index);
    if !c.body.is_empty() {
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    r
}

/// `X-Consul-Index`, `X-Consul-KnownLeader`, `X-Consul-LastContact`.
pub fn add_meta(s: &HttpState, h: &mut http::HeaderMap, index: u64) {
    let ls = s.rpc.leader_status();
    h.insert("X-Consul-Index", HeaderValue::from(index.max(1)));
    h.insert(
        "X-Consul-KnownLeader",
        HeaderValue::from_static(if ls.known_leader { "true" } else { "false" }),
    );
    h.insert(
        "X-Consul-LastContact",
        HeaderValue::from(ls.last_contact_ms),
    );
}
