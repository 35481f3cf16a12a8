//! The HTTP API options every client command takes (compat §10.7, §3.5): `-http-addr`,
//! `-token`, `-token-file`, `-datacenter`, `-stale`, the TLS file options, and the
//! `CONSUL_HTTP_*` environment variables behind them. Flags win over the environment.
//!
//! Token precedence, as Go's `api.NewClient` resolves it: a token file beats a token at the
//! same level, and any flag beats any variable. The token itself never appears in output.

use super::flags::{FlagSet, Kind, Parsed};
use super::ui::Env;
use tribune_api::client::QueryOptions;
use tribune_api::{Client, ClientConfig};

const DEFAULT_ADDR: &str = "127.0.0.1:8500";

/// Adds the HTTP API options to a command's flags.
pub(crate) fn add(fs: FlagSet) -> FlagSet {
    fs.http(
        "http-addr",
        Kind::Str,
        "address",
        "The address and port of the Consul HTTP agent. The value can be an IP address or DNS \
         address, but it must also include the port. This can also be specified via the \
         CONSUL_HTTP_ADDR environment variable. The default value is http://127.0.0.1:8500.",
    )
    .http(
        "token",
        Kind::Str,
        "value",
        "ACL token to use in the request. This can also be specified via the CONSUL_HTTP_TOKEN \
         environment variable. If unspecified, the query will default to the token of the agent \
         at the HTTP address.",
    )
    .http(
        "token-file",
        Kind::Str,
        "value",
        "File containing the ACL token to use in the request instead of one specified via the \
         -token argument or CONSUL_HTTP_TOKEN environment variable. This can also be specified \
         via the CONSUL_HTTP_TOKEN_FILE environment variable.",
    )
    .http(
        "datacenter",
        Kind::Str,
        "value",
        "Name of the datacenter to query. If unspecified, this will default to the datacenter \
         of the queried agent.",
    )
    .http(
        "stale",
        Kind::Bool,
        "",
        "Permit any server (non-leader) to respond to this request. This allows for lower \
         latency and higher throughput, but can result in stale data. This option has no effect \
         on non-read operations. The default value is false.",
    )
    .http("ca-file", Kind::Str, "value", "Path to a CA file to use for TLS when communicating with the agent (accepted for compatibility; TLS is not supported by this client yet).")
    .http("ca-path", Kind::Str, "value", "Path to a directory of CA certificates (accepted for compatibility; TLS is not supported by this client yet).")
    .http("client-cert", Kind::Str, "value", "Path to a client cert file (accepted for compatibility; TLS is not supported by this client yet).")
    .http("client-key", Kind::Str, "value", "Path to a client key file (accepted for compatibility; TLS is not supported by this client yet).")
    .http("tls-server-name", Kind::Str, "value", "The server name to use as the SNI host (accepted for compatibility; TLS is not supported by this client yet).")
}

/// Builds the client from flags and environment. The error text follows
/// `Error connecting to Consul agent: ` at the call site.
pub(crate) fn client(p: &Parsed, env: &Env) -> Result<Client, String> {
    Ok(Client::new(client_config(p, env)?))
}

/// The read options the HTTP flags imply (`-stale`).
pub(crate) fn query_options(p: &Parsed) -> QueryOptions {
    QueryOptions {
        stale: p.bool("stale"),
        ..QueryOptions::default()
    }
}

pub(crate) fn client_config(p: &Parsed, env: &Env) -> Result<ClientConfig, String> {
    let addr = p
        .str("http-addr")
        .filter(|a| !a.is_empty())
        .or_else(|| env.get("CONSUL_HTTP_ADDR"))
        .unwrap_or(DEFAULT_ADDR);
    let https_env = env
        .get("CONSUL_HTTP_SSL")
        .and_then(super::flags::parse_go_bool)
        .unwrap_or(false);
    let address = base_url(addr, https_env)?;
    let token = resolve_token(p, env)?;
    let datacenter = p
        .str("datacenter")
        .filter(|d| !d.is_empty())
        .map(str::to_string);
    Ok(ClientConfig {
        address,
        token,
        datacenter,
    })
}

/// `host:port`, `http://…`, `https://…` → a base URL. Like Go's client, an explicit request
/// for TLS (`CONSUL_HTTP_SSL=true`) is never downgraded by an `http://` address.
fn base_url(addr: &str, https: bool) -> Result<String, String> {
    let addr = addr.trim().trim_end_matches('/');
    let (scheme, rest) = match addr.split_once("://") {
        Some(("http", rest)) => (if https { "https" } else { "http" }, rest),
        Some(("https", rest)) => ("https", rest),
        Some(("unix", _)) => {
            return Err("unix socket addresses are not supported by this client".to_string())
        }
        Some((other, _)) => return Err(format!("Unknown protocol scheme: {other}")),
        None => (if https { "https" } else { "http" }, addr),
    };
    Ok(format!("{scheme}://{rest}"))
}

fn resolve_token(p: &Parsed, env: &Env) -> Result<Option<String>, String> {
    let read = |path: &str| -> Result<Option<String>, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("Error loading token file: {e}"))?;
        let t = text.trim();
        Ok((!t.is_empty()).then(|| t.to_string()))
    };
    if let Some(path) = p.str("token-file").filter(|f| !f.is_empty()) {
        if let Some(t) = read(path)? {
            return Ok(Some(t));
        }
    }
    if let Some(t) = p.str("token").filter(|t| !t.is_empty()) {
        return Ok(Some(t.to_string()));
    }
    if let Some(path) = env.get("CONSUL_HTTP_TOKEN_FILE") {
        if let Some(t) = read(path)? {
            return Ok(Some(t));
        }
    }
    Ok(env.get("CONSUL_HTTP_TOKEN").map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(args: &[&str], env: &[(&str, &str)]) -> Result<ClientConfig, String> {
        let p = add(FlagSet::new()).parse(args).unwrap();
        client_config(&p, &Env::from_pairs(env))
    }

    #[test]
    fn defaults() {
        let c = cfg(&[], &[]).unwrap();
        assert_eq!(c.address, "http://127.0.0.1:8500");
        assert_eq!(c.token, None);
        assert_eq!(c.datacenter, None);
    }

    #[test]
    fn addresses() {
        assert_eq!(
            cfg(&["-http-addr=10.0.0.1:8500"], &[]).unwrap().address,
            "http://10.0.0.1:8500"
        );
        assert_eq!(
            cfg(&[], &[("CONSUL_HTTP_ADDR", "https://h:8501/")])
                .unwrap()
                .address,
            "https://h:8501"
        );
        assert_eq!(
            cfg(
                &[],
                &[("CONSUL_HTTP_ADDR", "h:1"), ("CONSUL_HTTP_SSL", "true")]
            )
            .unwrap()
            .address,
            "https://h:1"
        );
        assert_eq!(
            cfg(
                &["-http-addr", "http://flag:1"],
                &[("CONSUL_HTTP_ADDR", "env:2")]
            )
            .unwrap()
            .address,
            "http://flag:1"
        );
        assert_eq!(
            cfg(&["-http-addr=ftp://x"], &[]).unwrap_err(),
            "Unknown protocol scheme: ftp"
        );
    }

    #[test]
    fn token_precedence_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t");
        std::fs::write(&file, "  from-file\n").unwrap();
        let file = file.to_str().unwrap();
        let env = [("CONSUL_HTTP_TOKEN", "from-env")];
        assert_eq!(cfg(&[], &env).unwrap().token.as_deref(), Some("from-env"));
        assert_eq!(
            cfg(&["--token=from-flag"], &env).unwrap().token.as_deref(),
            Some("from-flag")
        );
        let env_file = [
            ("CONSUL_HTTP_TOKEN", "from-env"),
            ("CONSUL_HTTP_TOKEN_FILE", file),
        ];
        assert_eq!(
            cfg(&[], &env_file).unwrap().token.as_deref(),
            Some("from-file")
        );
        assert_eq!(
            cfg(&["-token=from-flag"], &env_file)
                .unwrap()
                .token
                .as_deref(),
            Some("from-flag")
        );
        let flag_file = format!("-token-file={file}");
        assert_eq!(
            cfg(&[&flag_file, "-token=x"], &env)
                .unwrap()
                .token
                .as_deref(),
            Some("from-file")
        );
        let missing = cfg(&["-token-file=/nonexistent/token"], &[]).unwrap_err();
        assert!(
            missing.starts_with("Error loading token file: "),
            "{missing}"
        );
    }
}
