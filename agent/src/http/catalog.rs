//! `/v1/catalog/*` (compat §6).

use super::blocking::{self, Computed};
use super::{convert, decode_body, ApiError, Ctx, HttpState};
use crate::acl::{Access, Resource};
use crate::filter::Filter;
use crate::state::{Table, Tables, WatchKey};
use crate::structs::{self, msg, Command, DeregisterRequest, RegisterRequest};
use axum::extract::{Path, Request, State};
use axum::response::Response;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tribune_api::types as api;

/// `node-meta=k:v` pairs; every one must match.
pub(super) fn node_meta_filter(ctx: &Ctx) -> Vec<(String, String)> {
    ctx.params
        .all("node-meta")
        .map(|kv| match kv.split_once(':') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.to_string(), String::new()),
        })
        .collect()
}

pub(super) fn node_matches_meta(node: Option<&structs::Node>, want: &[(String, String)]) -> bool {
    want.iter().all(|(k, v)| {
        node.and_then(|n| n.meta.get(k))
            .is_some_and(|have| have == v)
    })
}

/// Every `tag=` (case-insensitive) must be on the service.
pub(super) fn has_tags(s: &structs::Service, tags: &[String]) -> bool {
    tags.iter()
        .all(|t| s.tags.iter().any(|have| have.eq_ignore_ascii_case(t)))
}

pub(super) fn passes<T: serde::Serialize>(filter: &Option<Filter>, v: &T) -> bool {
    match filter {
        None => true,
        Some(f) => serde_json::to_value(v).is_ok_and(|j| f.matches(&j)),
    }
}

pub async fn datacenters(
    State(s): State<Arc<HttpState>>,
    req: Request,
) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    Ok(super::json(&[s.info.datacenter.as_str()], ctx.pretty()))
}

pub async fn nodes(State(s): State<Arc<HttpState>>, req: Request) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    let q = ctx.query(&s)?;
    let meta = node_meta_filter(&ctx);
    let key = format!("catalog/nodes?{}", ctx.params.cache_key());
    blocking::read(&s, &q, WatchKey::Table(Table::Nodes), key, |t: &Tables| {
        let out: Vec<api::Node> = t
            .nodes()
            .filter(|n| node_matches_meta(Some(n), &meta))
            .filter(|n| ctx.authz.allows(Resource::Node, &n.node, Access::Read))
            .map(convert::node)
            .filter(|n| passes(&q.filter, n))
            .collect();
        Computed::json(t.table_index(Table::Nodes), &out)
    })
    .await
}

pub async fn services(State(s): State<Arc<HttpState>>, req: Request) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    let q = ctx.query(&s)?;
    let meta = node_meta_filter(&ctx);
    let key = format!("catalog/services?{}", ctx.params.cache_key());
    blocking::read(
        &s,
        &q,
        WatchKey::Table(Table::Services),
        key,
        |t: &Tables| {
            let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for svc in t.all_services() {
                let node = t.node(&svc.node);
                if !node_matches_meta(node, &meta)
                    || !ctx
                        .authz
                        .allows(Resource::Service, &svc.service, Access::Read)
                {
                    continue;
                }
                if q.filter.is_some() && !passes(&q.filter, &convert::catalog_service(node, svc)) {
                    continue;
                }
                out.entry(svc.service.clone())
                    .or_default()
                    .extend(svc.tags.iter().cloned());
            }
            Computed::json(t.table_index(Table::Services), &out)
        },
    )
    .await
}

pub async fn service(
    State(s): State<Arc<HttpState>>,
    Path(name): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    let q = ctx.query(&s)?;
    ctx.authz.require(Resource::Service, &name, Access::Read)?;
    let tags: Vec<String> = ctx.params.all("tag").map(str::to_string).collect();
    let meta = node_meta_filter(&ctx);
    let key = format!("catalog/service/{name}?{}", ctx.params.cache_key());
    blocking::read(
        &s,
        &q,
        WatchKey::Service(name.clone()),
        key,
        |t: &Tables| {
            let out: Vec<api::CatalogService> = t
                .service_instances(&name)
                .into_iter()
                .filter(|svc| has_tags(svc, &tags) && node_matches_meta(t.node(&svc.node), &meta))
                .map(|svc| convert::catalog_service(t.node(&svc.node), svc))
                .filter(|cs| passes(&q.filter, cs))
                .collect();
            Computed::json(t.service_index(&name), &out)
        },
    )
    .await
}

pub async fn node(
    State(s): State<Arc<HttpState>>,
    Path(name): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    let q = ctx.query(&s)?;
    let key = format!("catalog/node/{name}?{}", ctx.params.cache_key());
    blocking::read(&s, &q, WatchKey::Node(name.clone()), key, |t: &Tables| {
        let idx = t.node_index(&name);
        match t.node(&name) {
            None => Computed::json(idx, &serde_json::Value::Null),
            Some(n) => {
                let services = t
                    .node_services(&name)
                    .map(|svc| (svc.id.clone(), convert::node_service(svc)))
                    .filter(|(_, ns)| passes(&q.filter, ns))
                    .collect();
                Computed::json(
                    idx,
                    &api::CatalogNode {
                        node: convert::node(n),
                        services,
                    },
                )
            }
        }
    })
    .await
}

fn token_of(ctx: &Ctx, body: Option<&api::WriteRequest>) -> Option<String> {
    ctx.token
        .clone()
        .or_else(|| body.map(|w| w.token.clone()).filter(|t| !t.is_empty()))
}

pub async fn register(State(s): State<Arc<HttpState>>, req: Request) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    let body: api::CatalogRegistration = decode_body(req, 4 << 20).await?;
    let authz = s
        .acl
        .authorize(token_of(&ctx, body.write_request.as_ref()).as_deref())?;
    if body.node.is_empty() {
        return Err(ApiError::bad_request(msg::MUST_PROVIDE_NODE));
    }
    if body.address.is_empty() && !body.skip_node_update {
        return Err(ApiError::bad_request(msg::MUST_PROVIDE_ADDRESS));
    }
    if !body.datacenter.is_empty() && !body.datacenter.eq_ignore_ascii_case(&s.info.datacenter) {
        return Err(ApiError::internal(msg::NO_PATH_TO_DC));
    }
    if !body.id.is_empty() && uuid::Uuid::parse_str(&body.id).is_err() {
        return Err(ApiError::bad_request(format!(
            "Invalid node ID: {:?}",
            body.id
        )));
    }
    authz.require(Resource::Node, &body.node, Access::Write)?;
    let service = match &body.service {
        Some(svc) => {
            if svc.service.is_empty() {
                return Err(ApiError::bad_request(
                    "Invalid service: Must provide service name",
                ));
            }
            authz.require(Resource::Service, &svc.service, Access::Write)?;
            let w = svc.weights.clone().unwrap_or_default();
            Some(structs::Service {
                node: body.node.clone(),
                kind: svc.kind.clone(),
                id: if svc.id.is_empty() {
                    svc.service.clone()
                } else {
                    svc.id.clone()
                },
                service: svc.service.clone(),
                tags: svc.tags.clone(),
                address: svc.address.clone(),
                tagged_addresses: svc
                    .tagged_addresses
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            structs::ServiceAddr {
                                address: v.address.clone(),
                                port: v.port,
                            },
                        )
                    })
                    .collect(),
                meta: svc.meta.clone(),
                port: svc.port,
                weights_passing: w.passing,
                weights_warning: w.warning,
                enable_tag_override: svc.enable_tag_override,
                create_index: 0,
                modify_index: 0,
            })
        }
        None => None,
    };
    let mut checks = Vec::new();
    for c in body.check.iter().chain(body.checks.iter()) {
        if c.check_id.is_empty() && c.name.is_empty() {
            return Err(ApiError::bad_request("Invalid check: missing check ID"));
        }
        let status = if c.status.is_empty() {
            structs::health::CRITICAL.to_string()
        } else {
            c.status.clone()
        };
        if !structs::health::is_valid(&status) {
            return Err(ApiError::bad_request(msg::BAD_CHECK_STATUS));
        }
        checks.push(structs::Check {
            node: body.node.clone(),
            check_id: if c.check_id.is_empty() {
                c.name.clone()
            } else {
                c.check_id.clone()
            },
            name: c.name.clone(),
            status,
            notes: c.notes.clone(),
            output: c.output.clone(),
            service_id: c.service_id.clone(),
            definition: structs::CheckDef {
                http: c.definition.http.clone(),
                tcp: c.definition.tcp.clone(),
                interval_ns: c.definition.interval.map_or(0, |d| d.0.as_nanos() as u64),
                timeout_ns: c.definition.timeout.map_or(0, |d| d.0.as_nanos() as u64),
                ..Default::default()
            },
            ..Default::default()
        });
    }
    let cmd = Command::Register(RegisterRequest {
        node: structs::Node {
            id: body.id.clone(),
            node: body.node.clone(),
            address: body.address.clone(),
            datacenter: s.info.datacenter.clone(),
            tagged_addresses: body.tagged_addresses.clone(),
            meta: body.node_meta.clone(),
            create_index: 0,
            modify_index: 0,
        },
        skip_node_update: body.skip_node_update,
        service,
        checks,
    });
    let r = s.rpc.apply(cmd).await?;
    if let Some((_, e)) = r.errors.first() {
        return Err(ApiError::internal(e.clone()));
    }
    Ok(super::json(&true, ctx.pretty()))
}

pub async fn deregister(
    State(s): State<Arc<HttpState>>,
    req: Request,
) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    let body: api::CatalogDeregistration = decode_body(req, 1 << 20).await?;
    let authz = s
        .acl
        .authorize(token_of(&ctx, body.write_request.as_ref()).as_deref())?;
    if body.node.is_empty() {
        return Err(ApiError::bad_request(msg::MUST_PROVIDE_NODE));
    }
    authz.require(Resource::Node, &body.node, Access::Write)?;
    let cmd = Command::Deregister(DeregisterRequest {
        node: body.node,
        service_id: Some(body.service_id).filter(|x| !x.is_empty()),
        check_id: Some(body.check_id).filter(|x| !x.is_empty()),
    });
    s.rpc.apply(cmd).await?;
    Ok(super::json(&true, ctx.pretty()))
}
