//! `tribune keyring -list | -install KEY | -use KEY | -remove KEY` (compat §12.3): gossip
//! key rotation on every member through `/v1/operator/keyring`.

use super::flags::FlagSet;
use super::ui::Ui;
use super::{connect, http_flags, parse_flags};
use serde_json::Value;

const HELP: &str = "
Usage: tribune keyring [options]

  Manages encryption keys used for gossip messages. Gossip encryption is
  optional. When enabled, this command may be used to examine active encryption
  keys in the cluster, add new keys, and remove old ones. When combined, this
  functionality provides the ability to perform key rotation cluster-wide,
  without disrupting the cluster.

  All operations performed by this command can only be run against server nodes,
  and affect both the LAN and WAN keyrings in lock-step.

  All variations of the keyring command return 0 if all nodes reply and there
  are no errors. If any node fails to reply or reports failure, the exit code
  will be 1.
";

fn flags() -> FlagSet {
    http_flags::add(FlagSet::new())
        .string("install", "key", "Install a new encryption key. This will broadcast the new key to all members in the cluster.")
        .string("use", "key", "Change the primary encryption key, which is used to encrypt messages. The key must already be installed before this operation can succeed.")
        .string("remove", "key", "Remove the given key from the cluster. This operation may only be performed on keys which are not currently the primary key.")
        .bool("list", "List all keys currently in use within the cluster.")
        .bool("local-only", "Setting this to true will force the keyring query to only hit local servers (no WAN traffic).")
        .string("relay-factor", "int", "Setting this to a non-zero value will cause nodes to relay their response to the operation through this many randomly-chosen other nodes in the cluster. The maximum allowed value is 5.")
}

pub(super) fn help() -> String {
    flags().usage(HELP)
}

pub(super) async fn run(args: &[String], ui: &mut Ui<'_>) -> i32 {
    let fs = flags();
    let p = match parse_flags(&fs, HELP, args, ui) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let list = p.bool("list");
    let (install, use_, remove) = (
        p.str_or("install", ""),
        p.str_or("use", ""),
        p.str_or("remove", ""),
    );
    let actions = [
        list,
        !install.is_empty(),
        !use_.is_empty(),
        !remove.is_empty(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if actions != 1 {
        ui.error("Only a single action is allowed");
        return 1;
    }
    let Some(client) = connect(&p, ui) else {
        return 1;
    };
    if list {
        ui.output("==> Gathering installed encryption keys...");
        let r = match client
            .call(reqwest::Method::GET, "/v1/operator/keyring", &[], None)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                ui.error(format!("error: {e}"));
                return 1;
            }
        };
        let pools: Vec<Value> = serde_json::from_slice(&r.body).unwrap_or_default();
        for pool in &pools {
            let wan = pool["WAN"].as_bool().unwrap_or(false);
            let dc = pool["Datacenter"].as_str().unwrap_or("");
            ui.output("");
            ui.output(if wan {
                "WAN:".to_string()
            } else {
                format!("{dc} (LAN):")
            });
            let total = pool["NumNodes"].as_u64().unwrap_or(0);
            if let Some(keys) = pool["Keys"].as_object() {
                for (key, count) in keys {
                    ui.output(format!("  {key} [{}/{total}]", count.as_u64().unwrap_or(0)));
                }
            }
        }
        return 0;
    }
    let (method, key, banner) = if !install.is_empty() {
        (
            reqwest::Method::POST,
            install,
            "==> Installing new gossip encryption key...",
        )
    } else if !use_.is_empty() {
        (
            reqwest::Method::PUT,
            use_,
            "==> Changing primary gossip encryption key...",
        )
    } else {
        (
            reqwest::Method::DELETE,
            remove,
            "==> Removing gossip encryption key...",
        )
    };
    ui.output(banner);
    let body = serde_json::json!({ "Key": key }).to_string().into_bytes();
    match client
        .call(method, "/v1/operator/keyring", &[], Some(body))
        .await
    {
        Ok(_) => 0,
        Err(e) => {
            ui.error(format!("error: {e}"));
            1
        }
    }
}
