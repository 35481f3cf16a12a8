//! `/v1/kv/*` (compat §8.1).

use super::blocking::{self, Computed};
use super::{body_bytes, convert, ApiError, Ctx, HttpState};
use crate::acl::{Access, Resource};
use crate::state::{Tables, WatchKey};
use crate::structs::{msg, Command, KvOp, KvVerb};

use axum::extract::{Path, Request, State};
use axum::response::Response;
use http::{HeaderValue, StatusCode};
use std::collections::BTreeSet;
use std::sync::Arc;
use tribune_api::types as api;

pub async fn get_root(state: State<Arc<HttpState>>, req: Request) -> Result<Response, ApiError> {
    get(state, Path(String::new()), req).await
}

pub async fn put_root(state: State<Arc<HttpState>>, req: Request) -> Result<Response, ApiError> {
    put(state, Path(String::new()), req).await
}

pub async fn delete_root(state: State<Arc<HttpState>>, req: Request) -> Result<Response, ApiError> {
    delete(state, Path(String::new()), req).await
}

/// The relaxed key rule of Consul ≥ 1.21.6: no path traversal, no leading/trailing spaces.
fn validate_key(key: &str) -> Result<(), ApiError> {
    if key.starts_with('/') {
        return Err(ApiError::bad_request(format!(
            "Invalid key name {key:?}: keys must not start with '/'"
        )));
    }
    if key.split('/').any(|seg| seg == "..") || key != key.trim() {
        return Err(ApiError::bad_request(format!(
            "Invalid key name {key:?}: path traversal segments and leading or trailing spaces are not allowed"
        )));
    }
    Ok(())
}

pub async fn get(
    State(s): State<Arc<HttpState>>,
    Path(key): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    let mut q = ctx.query(&s)?;
    let cache = format!("kv/{key}?{}", ctx.params.cache_key());
    if ctx.params.has("keys") {
        let sep = ctx
            .params
            .get("separator")
            .or_else(|| ctx.params.get("seperator"))
            .unwrap_or("")
            .to_string();
        return blocking::read(
            &s,
            &q,
            WatchKey::KvPrefix(key.clone()),
            cache,
            |t: &Tables| {
                let mut keys = BTreeSet::new();
                for e in t.kv_list(&key) {
                    if !ctx.authz.allows(Resource::Key, &e.key, Access::List) {
                        continue;
                    }
                    let rest = &e.key[key.len()..];
                    match (sep.is_empty(), rest.find(sep.as_str())) {
                        (false, Some(i)) => keys.insert(format!("{key}{}", &rest[..i + sep.len()])),
                        _ => keys.insert(e.key.clone()),
                    };
                }
                let index = t.kv_prefix_index(&key);
                if keys.is_empty() && !key.is_empty() {
                    return Computed {
                        index,
                        status: StatusCode::NOT_FOUND,
                        body: Default::default(),
                    };
                }
                Computed::json(index, &keys)
            },
        )
        .await;
    }
    if ctx.params.has("recurse") {
        return blocking::read(
            &s,
            &q,
            WatchKey::KvPrefix(key.clone()),
            cache,
            |t: &Tables| {
                let out: Vec<api::KvPair> = t
                    .kv_list(&key)
                    .filter(|e| ctx.authz.allows(Resource::Key, &e.key, Access::Read))
                    .map(convert::kv_pair)
                    .collect();
                let index = t.kv_prefix_index(&key);
                if out.is_empty() {
                    return Computed {
                        index,
                        status: StatusCode::NOT_FOUND,
                        body: Default::default(),
                    };
                }
                Computed::json(index, &out)
            },
        )
        .await;
    }
    ctx.authz.require(Resource::Key, &key, Access::Read)?;
    let raw = ctx.params.has("raw");
    // A raw value goes out byte for byte, even when it happens to be JSON.
    q.pretty &= !raw;
    let resp = blocking::read(&s, &q, WatchKey::KvKey(key.clone()), cache, |t: &Tables| {
        let index = t.kv_key_index(&key);
        match t.kv_get(&key) {
            None => Computed {
                index,
                status: StatusCode::NOT_FOUND,
                body: Default::default(),
            },
            Some(e) if raw => Computed {
                index,
                status: StatusCode::OK,
                body: e.value.clone().into(),
            },
            Some(e) => Computed::json(index, &[convert::kv_pair(e)]),
        }
    })
    .await?;
    if raw && resp.status() == StatusCode::OK {
        let (mut parts, body) = resp.into_parts();
        let h = &mut parts.headers;
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        h.insert(
            "X-Content-Type-Options",
            HeaderValue::from_static("nosniff"),
        );
        h.insert(
            "Content-Security-Policy",
            HeaderValue::from_static("sandbox"),
        );
        return Ok(Response::from_parts(parts, body));
    }
    Ok(resp)
}

fn parse_u64(ctx: &Ctx, name: &str) -> Result<Option<u64>, ApiError> {
    match ctx.params.get(name) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("Invalid {name} value: {v:?}"))),
    }
}

fn bool_response(ok: bool, pretty: bool) -> Response {
    super::json(&ok, pretty)
}

pub async fn put(
    State(s): State<Arc<HttpState>>,
    Path(key): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    if key.is_empty() {
        return Err(ApiError::bad_request(msg::MISSING_KEY_NAME));
    }
    validate_key(&key)?;
    ctx.authz.require(Resource::Key, &key, Access::Write)?;
    let flags = parse_u64(&ctx, "flags")?.unwrap_or(0);
    let cas = parse_u64(&ctx, "cas")?;
    let acquire = ctx.params.get("acquire").map(str::to_string);
    let release = ctx.params.get("release").map(str::to_string);
    let given: Vec<String> = [
        cas.map(|c| format!("cas={c}")),
        acquire.as_ref().map(|a| format!("acquire={a}")),
        release.as_ref().map(|r| format!("release={r}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if given.len() > 1 {
        return Err(ApiError::bad_request(format!(
            "Conflicting flags: {}",
            given.join("&")
        )));
    }
    let limit = s.limits.kv_max_value_size;
    let value = body_bytes(req, limit + 1).await?;
    if value.len() > limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "Request body({} bytes) too large, max size: {limit} bytes.",
                value.len()
            ),
        ));
    }
    let (verb, session) = match (&acquire, &release) {
        (Some(sess), _) => (KvVerb::Lock, sess.clone()),
        (_, Some(sess)) => (KvVerb::Unlock, sess.clone()),
        _ if cas.is_some() => (KvVerb::Cas, String::new()),
        _ => (KvVerb::Set, String::new()),
    };
    if verb == KvVerb::Lock {
        let store = s.rpc.store();
        if !store.read(|t| t.session(&session).is_some()) {
            return Err(ApiError::internal(format!("invalid session {session:?}")));
        }
        if store.in_lock_delay(&key) {
            return Ok(bool_response(false, ctx.pretty()));
        }
    }
    let op = KvOp {
        verb,
        key,
        value: value.to_vec(),
        flags,
        index: cas.unwrap_or(0),
        session,
    };
    let r = s.rpc.apply(Command::Kv(op)).await?;
    Ok(bool_response(r.ok, ctx.pretty()))
}

pub async fn delete(
    State(s): State<Arc<HttpState>>,
    Path(key): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    let recurse = ctx.params.has("recurse");
    let cas = parse_u64(&ctx, "cas")?;
    if recurse && cas.is_some() {
        return Err(ApiError::bad_request("Conflicting flags: cas and recurse"));
    }
    if key.is_empty() && !recurse {
        return Err(ApiError::bad_request(msg::MISSING_KEY_NAME));
    }
    ctx.authz.require(Resource::Key, &key, Access::Write)?;
    let verb = if recurse {
        KvVerb::DeleteTree
    } else if cas.is_some() {
        KvVerb::DeleteCas
    } else {
        KvVerb::Delete
    };
    let op = KvOp {
        verb,
        key,
        value: Vec::new(),
        flags: 0,
        index: cas.unwrap_or(0),
        session: String::new(),
    };
    let r = s.rpc.apply(Command::Kv(op)).await?;
    Ok(bool_response(r.ok, ctx.pretty()))
}

/// `PUT /v1/txn` (compat §8.3).
pub async fn txn(State(s): State<Arc<HttpState>>, req: Request) -> Result<Response, ApiError> {
    use base64::Engine;
    let ctx = Ctx::new(&s, &req)?;
    let body = body_bytes(req, s.limits.txn_max_req_len).await?;
    let ops: Vec<api::TxnOp> = tribune_api::decode::from_slice(&body).map_err(ApiError::decode)?;
    const MAX_OPS: usize = 128;
    if ops.len() > MAX_OPS {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "Transaction contains too many operations ({} > {MAX_OPS})",
                ops.len()
            ),
        ));
    }
    let mut kv_ops = Vec::with_capacity(ops.len());
    let mut errors = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let Some(kv) = &op.kv else {
            errors.push(api::TxnError {
                op_index: i,
                what: "only KV operations are supported".into(),
            });
            continue;
        };
        let Some(verb) = KvVerb::parse(&kv.verb) else {
            errors.push(api::TxnError {
                op_index: i,
                what: format!("unknown KV verb {:?}", kv.verb),
            });
            continue;
        };
        let access = if verb.is_read() {
            Access::Read
        } else {
            Access::Write
        };
        if !ctx.authz.allows(Resource::Key, &kv.key, access) {
            errors.push(api::TxnError {
                op_index: i,
                what: "Permission denied".into(),
            });
            continue;
        }
        // The lock delay binds transactions too (Consul's `kvsPreApply` runs for both).
        if verb == KvVerb::Lock && s.rpc.store().in_lock_delay(&kv.key) {
            errors.push(api::TxnError {
                op_index: i,
                what: format!("failed to lock key {:?} due to lock delay", kv.key),
            });
            continue;
        }
        let value = match &kv.value {
            Some(v) => match base64::engine::general_purpose::STANDARD.decode(v) {
                Ok(b) => b,
                Err(e) => {
                    return Err(ApiError::bad_request(format!(
                        "Failed to decode value at operation {i}: {e}"
                    )))
                }
            },
            None => Vec::new(),
        };
        kv_ops.push(KvOp {
            verb,
            key: kv.key.clone(),
            value,
            flags: kv.flags,
            index: kv.index,
            session: kv.session.clone(),
        });
    }
    let conflict = |errors: Vec<api::TxnError>| {
        let mut r = super::json(
            &api::TxnResponse {
                results: None,
                errors: Some(errors),
            },
            ctx.pretty(),
        );
        *r.status_mut() = StatusCode::CONFLICT;
        r
    };
    if !errors.is_empty() {
        return Ok(conflict(errors));
    }
    let r = s.rpc.apply(Command::Txn(kv_ops)).await?;
    if !r.errors.is_empty() {
        return Ok(conflict(
            r.errors
                .into_iter()
                .map(|(op_index, what)| api::TxnError { op_index, what })
                .collect(),
        ));
    }
    let results = r
        .entries
        .iter()
        .map(|e| api::TxnResult {
            kv: convert::kv_pair(e),
        })
        .collect();
    let mut resp = super::json(
        &api::TxnResponse {
            results: Some(results),
            errors: None,
        },
        ctx.pretty(),
    );
    blocking::add_meta(&s, resp.headers_mut(), r.index);
    Ok(resp)
}
