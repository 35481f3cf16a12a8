//! Token resolution and authorization.
//!
//! Every HTTP handler resolves the request's token ([`token_from_request`], Consul's
//! precedence: `?token=`, `X-Consul-Token`, `Authorization: Bearer`) and asks an
//! [`Authorizer`] before reading or writing. Until ACLs are enabled by a later change the
//! authorizer allows everything; the seam is here so handlers never change when it lands.
//! Tokens are secrets: never log them, never put them in errors.

use http::HeaderMap;

/// The resources Consul's rules name (§10.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    Acl,
    Agent,
    Event,
    Key,
    Keyring,
    Node,
    Operator,
    Service,
    Session,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    Read,
    List,
    Write,
}

/// A denial, rendered by the HTTP layer as `403 Permission denied`.
#[derive(Debug, thiserror::Error)]
#[error("Permission denied")]
pub struct Denied;

/// The decision maker for one request.
#[derive(Clone, Debug)]
pub struct Authorizer {
    allow_all: bool,
}

impl Authorizer {
    pub fn allows(&self, _resource: Resource, _name: &str, _access: Access) -> bool {
        self.allow_all
    }

    pub fn require(&self, resource: Resource, name: &str, access: Access) -> Result<(), Denied> {
        if self.allows(resource, name, access) {
            Ok(())
        } else {
            Err(Denied)
        }
    }
}

/// Resolves tokens to authorizers.
#[derive(Clone, Debug, Default)]
pub struct Acl {
    default_token: Option<String>,
}

impl Acl {
    pub fn new(default_token: Option<String>) -> Acl {
        Acl { default_token }
    }

    /// The authorizer for `token` (the agent's default token when the request has none).
    pub fn authorize(&self, token: Option<&str>) -> Result<Authorizer, Denied> {
        let _effective = token.or(self.default_token.as_deref());
        Ok(Authorizer { allow_all: true })
    }
}

/// The request's token by Consul's precedence. Non-Bearer `Authorization` schemes are ignored.
pub fn token_from_request<'a>(
    query_token: Option<&'a str>,
    headers: &'a HeaderMap,
) -> Option<&'a str> {
    if let Some(t) = query_token.filter(|t| !t.is_empty()) {
        return Some(t);
    }
    if let Some(t) = headers
        .get("x-consul-token")
        .and_then(|v| v.to_str().ok())
        .filter(|t| !t.is_empty())
    {
        return Some(t);
    }
    let auth = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let mut parts = auth.split_whitespace();
    let scheme = parts.next()?;
    if scheme.eq_ignore_ascii_case("bearer") {
        parts.next()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_precedence() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer b".parse().unwrap());
        assert_eq!(token_from_request(None, &h), Some("b"));
        h.insert("x-consul-token", "x".parse().unwrap());
        assert_eq!(token_from_request(None, &h), Some("x"));
        assert_eq!(token_from_request(Some("q"), &h), Some("q"));
        let mut basic = HeaderMap::new();
        basic.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(token_from_request(None, &basic), None);
    }
}
