//! The `tribune` command line: the daemon (`tribune agent`) and the client verbs, with
//! Consul's names, flags, output and exit codes so scripts written for `consul` keep working.
//!
//! Read in this order:
//! - this file: the command table, top-level dispatch (mitchellh/cli's rules: `-h` anywhere
//!   asks for help, `-v`/`--version` before the command prints the version, nested commands
//!   such as `kv get` by longest prefix), `version` and `keygen`;
//! - [`flags`]: Go `flag`-style parsing; [`http_flags`]: `-http-addr`, `-token`, ... and the
//!   `CONSUL_HTTP_*` variables; [`ui`]: injected stdout/stderr/stdin/environment;
//!   [`table`]: columnize and tabwriter layouts;
//! - one file per command family: [`agent_cmd`] (`agent`, `validate`), [`members`],
//!   [`services`], [`catalog`], [`kv`], [`agent_ops`] (`reload`, `leave`, `join`,
//!   `force-leave`, `info`, `monitor`), [`event`], [`operator`].
//!
//! Client commands talk to an agent through `tribune_api::Client` only; they never reach
//! into the agent's modules. Every API failure is printed as Consul prints it,
//! `Error <doing x>: Unexpected response code: <code> (<body>)`, on stderr with exit 1.
//! Tokens are never printed.

mod agent_cmd;
mod agent_ops;
mod catalog;
mod event;
#[cfg(test)]
mod fake_agent;
mod flags;
mod http_flags;
mod keyring;
mod kv;
mod members;
mod operator;
mod plugin;
mod services;
mod table;
mod ui;

use flags::{FlagError, FlagSet, Parsed};
use tribune_api::Client;
use ui::{Env, Ui};

/// The Consul version Tribune emulates: `tribune version`'s first line, the one tools grep
/// for `Consul v`. The value lives in [`crate::structs::CONSUL_VERSION`], which the agent also
/// reports (`/v1/agent/self`, the member `build` tag), so the CLI and the agent cannot disagree.
pub const CONSUL_VERSION: &str = crate::structs::CONSUL_VERSION;

/// Tribune's own version.
const TRIBUNE_VERSION: &str = crate::structs::TRIBUNE_VERSION;

/// The commit the binary was built from, when the build exported one.
const REVISION: Option<&str> = match option_env!("TRIBUNE_GIT_SHA") {
    Some(sha) => Some(sha),
    None => option_env!("GIT_COMMIT"),
};

/// Consul's RPC protocol numbers as `consul version` reports them.
const PROTOCOL_LINE: &str = "Protocol 2 spoken by default, understands 2 to 3 (agent will \
                             automatically use protocol >2 when speaking to compatible agents)";

/// Runs the command line; returns the process exit code.
pub fn main() -> i32 {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let env = Env::from_process();
    // Unlocked handles: the agent's log writer shares stderr from other threads, so the
    // command line must never hold the lock for the life of the process.
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    let mut input = std::io::stdin();
    let mut ui = Ui {
        out: &mut out,
        err: &mut err,
        stdin: &mut input,
        env: &env,
    };

    // The daemon needs the multi-threaded runtime, which it builds itself; every other
    // command is a handful of requests and runs on a current-thread runtime.
    if let Resolved::Run(Cmd::Agent, rest) = resolve(&args) {
        return agent_cmd::run_agent(rest, &mut ui);
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            ui.error(format!("Error starting the async runtime: {e}"));
            return 1;
        }
    };
    let code = rt.block_on(run(&args, &mut ui));
    let _ = ui.out.flush();
    code
}

/// Every command, in the order `tribune` lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmd {
    Agent,
    Keyring,
    Catalog,
    CatalogDatacenters,
    CatalogNodes,
    CatalogServices,
    Event,
    ForceLeave,
    Info,
    Join,
    Keygen,
    Kv,
    KvDelete,
    KvExport,
    KvGet,
    KvImport,
    KvPut,
    Leave,
    Members,
    Monitor,
    Operator,
    OperatorRaft,
    Plugin,
    PluginBench,
    PluginInspect,
    PluginList,
    PluginPack,
    PluginRun,
    RaftListPeers,
    RaftRemovePeer,
    Reload,
    Services,
    ServicesDeregister,
    ServicesRegister,
    Validate,
    Version,
}

struct Entry {
    name: &'static str,
    cmd: Cmd,
    synopsis: &'static str,
}

const COMMANDS: &[Entry] = &[
    Entry {
        name: "agent",
        cmd: Cmd::Agent,
        synopsis: "Runs a Tribune agent",
    },
    Entry {
        name: "catalog",
        cmd: Cmd::Catalog,
        synopsis: "Interact with the catalog",
    },
    Entry {
        name: "catalog datacenters",
        cmd: Cmd::CatalogDatacenters,
        synopsis: "Lists all known datacenters",
    },
    Entry {
        name: "catalog nodes",
        cmd: Cmd::CatalogNodes,
        synopsis: "Lists all nodes in the given datacenter",
    },
    Entry {
        name: "catalog services",
        cmd: Cmd::CatalogServices,
        synopsis: "Lists all registered services in a datacenter",
    },
    Entry {
        name: "event",
        cmd: Cmd::Event,
        synopsis: "Fire a new event",
    },
    Entry {
        name: "force-leave",
        cmd: Cmd::ForceLeave,
        synopsis: "Forces a member of the cluster to enter the \"left\" state",
    },
    Entry {
        name: "info",
        cmd: Cmd::Info,
        synopsis: "Provides debugging information for operators.",
    },
    Entry {
        name: "join",
        cmd: Cmd::Join,
        synopsis: "Tell the agent to join a cluster",
    },
    Entry {
        name: "keygen",
        cmd: Cmd::Keygen,
        synopsis: "Generates a new encryption key",
    },
    Entry {
        name: "keyring",
        cmd: Cmd::Keyring,
        synopsis: "Manages gossip layer encryption keys",
    },
    Entry {
        name: "kv",
        cmd: Cmd::Kv,
        synopsis: "Interact with the key-value store",
    },
    Entry {
        name: "kv delete",
        cmd: Cmd::KvDelete,
        synopsis: "Removes data from the KV store",
    },
    Entry {
        name: "kv export",
        cmd: Cmd::KvExport,
        synopsis: "Exports a tree from the KV store as JSON",
    },
    Entry {
        name: "kv get",
        cmd: Cmd::KvGet,
        synopsis: "Retrieves or lists data from the KV store",
    },
    Entry {
        name: "kv import",
        cmd: Cmd::KvImport,
        synopsis: "Imports a tree stored as JSON to the KV store",
    },
    Entry {
        name: "kv put",
        cmd: Cmd::KvPut,
        synopsis: "Sets or updates data in the KV store",
    },
    Entry {
        name: "leave",
        cmd: Cmd::Leave,
        synopsis: "Gracefully leaves the cluster and shuts down",
    },
    Entry {
        name: "members",
        cmd: Cmd::Members,
        synopsis: "Lists the members of a cluster",
    },
    Entry {
        name: "monitor",
        cmd: Cmd::Monitor,
        synopsis: "Stream logs from an agent",
    },
    Entry {
        name: "operator",
        cmd: Cmd::Operator,
        synopsis: "Provides cluster-level tools for operators",
    },
    Entry {
        name: "operator raft",
        cmd: Cmd::OperatorRaft,
        synopsis: "Provides commands for working with the Raft subsystem",
    },
    Entry {
        name: "operator raft list-peers",
        cmd: Cmd::RaftListPeers,
        synopsis: "Display the current Raft peer configuration",
    },
    Entry {
        name: "operator raft remove-peer",
        cmd: Cmd::RaftRemovePeer,
        synopsis: "Remove a server from the Raft configuration",
    },
    Entry {
        name: "plugin",
        cmd: Cmd::Plugin,
        synopsis: "Inspect, run and list WASM plugins",
    },
    Entry {
        name: "plugin bench",
        cmd: Cmd::PluginBench,
        synopsis: "Measures a plugin's cost per call, load time and memory",
    },
    Entry {
        name: "plugin inspect",
        cmd: Cmd::PluginInspect,
        synopsis: "Shows a plugin's kind, contract, SDK and capabilities",
    },
    Entry {
        name: "plugin list",
        cmd: Cmd::PluginList,
        synopsis: "Lists the plugins loaded by the agent",
    },
    Entry {
        name: "plugin pack",
        cmd: Cmd::PluginPack,
        synopsis: "Embeds a plugin.toml manifest into a component",
    },
    Entry {
        name: "plugin run",
        cmd: Cmd::PluginRun,
        synopsis: "Runs a plugin once and prints the result",
    },
    Entry {
        name: "reload",
        cmd: Cmd::Reload,
        synopsis: "Triggers the agent to reload configuration files",
    },
    Entry {
        name: "services",
        cmd: Cmd::Services,
        synopsis: "Interact with services",
    },
    Entry {
        name: "services deregister",
        cmd: Cmd::ServicesDeregister,
        synopsis: "Deregister services with the local agent",
    },
    Entry {
        name: "services register",
        cmd: Cmd::ServicesRegister,
        synopsis: "Register services with the local agent",
    },
    Entry {
        name: "validate",
        cmd: Cmd::Validate,
        synopsis: "Validate config files/directories",
    },
    Entry {
        name: "version",
        cmd: Cmd::Version,
        synopsis: "Prints the emulated Consul version and Tribune's own",
    },
];

fn entry(cmd: Cmd) -> &'static Entry {
    // Every `Cmd` has exactly one entry (checked by a test); the fallback keeps this total.
    COMMANDS
        .iter()
        .find(|e| e.cmd == cmd)
        .unwrap_or(&COMMANDS[0])
}

/// What the top-level arguments ask for.
#[derive(Debug, PartialEq, Eq)]
enum Resolved<'a> {
    /// `-v`, `-version` or `--version` before any command.
    Version,
    /// `-h`/`-help`/`--help` with no command.
    TopHelp,
    /// No command at all.
    NoCommand,
    /// A first word that is no command.
    Unknown,
    /// Flags before the command (`tribune -token=x members`).
    FlagsBeforeCommand(Option<Cmd>),
    /// `-h` somewhere after a command.
    Help(Cmd),
    Run(Cmd, &'a [String]),
}

/// mitchellh/cli's argument rules, which Consul's CLI inherits.
fn resolve(args: &[String]) -> Resolved<'_> {
    let mut help = false;
    let mut version = false;
    let mut top_flags = false;
    let mut found: Option<(Cmd, usize)> = None;
    let mut unknown = false;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        if a == "--" {
            break;
        }
        if matches!(a, "-h" | "-help" | "--help") {
            help = true;
        } else if found.is_none() && !unknown {
            if matches!(a, "-v" | "-version" | "--version") {
                version = true;
            } else if a.starts_with('-') {
                top_flags = true;
            } else if !a.is_empty() {
                // Longest nested name first: "operator raft list-peers" before "operator".
                let best = (1..=3).rev().find_map(|n| {
                    let words = args.get(i..i + n)?;
                    let name = words.join(" ");
                    COMMANDS
                        .iter()
                        .find(|e| e.name == name)
                        .map(|e| (e.cmd, i + n))
                });
                match best {
                    Some((cmd, next)) => {
                        found = Some((cmd, next));
                        i = next;
                        continue;
                    }
                    None => unknown = true,
                }
            }
        }
        i += 1;
    }
    if version {
        return Resolved::Version;
    }
    if help && found.is_none() && !unknown {
        return Resolved::TopHelp;
    }
    if top_flags {
        return Resolved::FlagsBeforeCommand(found.map(|(c, _)| c));
    }
    match found {
        None if unknown => Resolved::Unknown,
        None => Resolved::NoCommand,
        Some((cmd, _)) if help => Resolved::Help(cmd),
        Some((cmd, next)) => Resolved::Run(cmd, &args[next..]),
    }
}

/// Runs a whole command line (everything after the program name).
pub(crate) async fn run(args: &[String], ui: &mut Ui<'_>) -> i32 {
    match resolve(args) {
        Resolved::Version => version(&[], ui),
        Resolved::TopHelp => {
            ui.error(top_help());
            0
        }
        Resolved::NoCommand => {
            ui.error(top_help());
            1
        }
        Resolved::Unknown => {
            ui.error(top_help());
            127
        }
        Resolved::FlagsBeforeCommand(cmd) => {
            ui.error(
                "Invalid flags before the subcommand. If these flags are for\n\
                 the subcommand, please put them after the subcommand.\n",
            );
            ui.error(match cmd {
                Some(cmd) => command_help(cmd),
                None => top_help(),
            });
            1
        }
        Resolved::Help(cmd) => {
            ui.error(command_help(cmd));
            0
        }
        Resolved::Run(cmd, rest) => run_command(cmd, rest, ui).await,
    }
}

async fn run_command(cmd: Cmd, args: &[String], ui: &mut Ui<'_>) -> i32 {
    match cmd {
        Cmd::Agent => {
            // `main` starts the agent before any runtime exists; a runtime cannot host another.
            ui.error("The agent must be started from the tribune binary's main.");
            1
        }
        Cmd::Validate => agent_cmd::validate(args, ui),
        Cmd::Version => version(args, ui),
        Cmd::Keygen => keygen(args, ui),
        Cmd::Members => members::run(args, ui).await,
        Cmd::ServicesRegister => services::register(args, ui).await,
        Cmd::ServicesDeregister => services::deregister(args, ui).await,
        Cmd::CatalogDatacenters => catalog::datacenters(args, ui).await,
        Cmd::CatalogNodes => catalog::nodes(args, ui).await,
        Cmd::CatalogServices => catalog::services(args, ui).await,
        Cmd::KvGet => kv::get(args, ui).await,
        Cmd::KvPut => kv::put(args, ui).await,
        Cmd::KvDelete => kv::delete(args, ui).await,
        Cmd::KvExport => kv::export(args, ui).await,
        Cmd::KvImport => kv::import(args, ui).await,
        Cmd::Reload => agent_ops::reload(args, ui).await,
        Cmd::Leave => agent_ops::leave(args, ui).await,
        Cmd::Join => agent_ops::join(args, ui).await,
        Cmd::ForceLeave => agent_ops::force_leave(args, ui).await,
        Cmd::Info => agent_ops::info(args, ui).await,
        Cmd::Monitor => agent_ops::monitor(args, ui).await,
        Cmd::Event => event::run(args, ui).await,
        Cmd::Keyring => keyring::run(args, ui).await,
        Cmd::RaftListPeers => operator::list_peers(args, ui).await,
        Cmd::RaftRemovePeer => operator::remove_peer(args, ui).await,
        Cmd::PluginList => plugin::list(args, ui).await,
        Cmd::PluginBench => plugin::bench(args, ui).await,
        Cmd::PluginInspect => plugin::inspect(args, ui).await,
        Cmd::PluginRun => plugin::run(args, ui).await,
        Cmd::PluginPack => plugin::pack(args, ui).await,
        // A parent on its own (or with an unknown subcommand) prints its help and fails,
        // as Consul's `RunResultHelp` does.
        Cmd::Catalog
        | Cmd::Kv
        | Cmd::Services
        | Cmd::Operator
        | Cmd::OperatorRaft
        | Cmd::Plugin => {
            ui.error(command_help(cmd));
            1
        }
    }
}

/// `tribune` with no command: the list of top-level commands.
fn top_help() -> String {
    let top: Vec<&Entry> = COMMANDS.iter().filter(|e| !e.name.contains(' ')).collect();
    let mut s = String::from("Usage: tribune [--version] [--help] <command> [<args>]\n\n");
    s.push_str("Available commands are:\n");
    s.push_str(&list_entries(&top, ""));
    s
}

/// `    name    synopsis` lines, names padded to the longest (mitchellh/cli's layout).
fn list_entries(entries: &[&Entry], parent: &str) -> String {
    let names: Vec<&str> = entries
        .iter()
        .map(|e| e.name.strip_prefix(parent).unwrap_or(e.name).trim_start())
        .collect();
    let width = names.iter().map(|n| n.len()).max().unwrap_or(0);
    let mut s = String::new();
    for (name, e) in names.iter().zip(entries) {
        s.push_str(&format!("    {name:<width$}    {}\n", e.synopsis));
    }
    s
}

/// A command's help; a parent's help ends with its direct subcommands.
fn command_help(cmd: Cmd) -> String {
    let mut text = match cmd {
        Cmd::Agent => agent_cmd::agent_help(),
        Cmd::Validate => agent_cmd::validate_help(),
        Cmd::Version => version_flags().usage(VERSION_HELP),
        Cmd::Keygen => FlagSet::new().usage(KEYGEN_HELP),
        Cmd::Members => members::help(),
        Cmd::ServicesRegister => services::register_help(),
        Cmd::ServicesDeregister => services::deregister_help(),
        Cmd::CatalogDatacenters => catalog::datacenters_help(),
        Cmd::CatalogNodes => catalog::nodes_help(),
        Cmd::CatalogServices => catalog::services_help(),
        Cmd::KvGet => kv::get_help(),
        Cmd::KvPut => kv::put_help(),
        Cmd::KvDelete => kv::delete_help(),
        Cmd::KvExport => kv::export_help(),
        Cmd::KvImport => kv::import_help(),
        Cmd::Reload => agent_ops::reload_help(),
        Cmd::Leave => agent_ops::leave_help(),
        Cmd::Join => agent_ops::join_help(),
        Cmd::ForceLeave => agent_ops::force_leave_help(),
        Cmd::Info => agent_ops::info_help(),
        Cmd::Monitor => agent_ops::monitor_help(),
        Cmd::Event => event::help(),
        Cmd::Keyring => keyring::help(),
        Cmd::RaftListPeers => operator::list_peers_help(),
        Cmd::RaftRemovePeer => operator::remove_peer_help(),
        Cmd::PluginList => plugin::list_help(),
        Cmd::PluginBench => plugin::bench_help(),
        Cmd::PluginInspect => plugin::inspect_help(),
        Cmd::PluginRun => plugin::run_help(),
        Cmd::PluginPack => plugin::pack_help(),
        Cmd::Plugin => PLUGIN_HELP.trim().to_string(),
        Cmd::Catalog => CATALOG_HELP.trim().to_string(),
        Cmd::Kv => KV_HELP.trim().to_string(),
        Cmd::Services => SERVICES_HELP.trim().to_string(),
        Cmd::Operator => OPERATOR_HELP.trim().to_string(),
        Cmd::OperatorRaft => OPERATOR_RAFT_HELP.trim().to_string(),
    };
    let parent = entry(cmd).name;
    let prefix = format!("{parent} ");
    let children: Vec<&Entry> = COMMANDS
        .iter()
        .filter(|e| {
            e.name
                .strip_prefix(&prefix)
                .is_some_and(|rest| !rest.contains(' '))
        })
        .collect();
    if !children.is_empty() {
        text.push_str("\n\nSubcommands:\n");
        text.push_str(list_entries(&children, &prefix).trim_end());
    }
    text
}

const PLUGIN_HELP: &str = "
Usage: tribune plugin <subcommand> [options] [args]

  This command has subcommands for WASM plugins: inspect a component file,
  run it once, embed its manifest, or list the plugins a running agent loaded.
";

const CATALOG_HELP: &str = "
Usage: tribune catalog <subcommand> [options] [args]

  This command has subcommands for interacting with the catalog. The catalog
  should not be confused with the agent, although the APIs and responses may be
  similar.

  List all datacenters:

      $ tribune catalog datacenters

  List all nodes:

      $ tribune catalog nodes

  List all services:

      $ tribune catalog services

  For more examples, ask for subcommand help or view the documentation.
";

const KV_HELP: &str = "
Usage: tribune kv <subcommand> [options] [args]

  This command has subcommands for interacting with the key-value store.
  Here are some simple examples, and more detailed examples are available
  in the subcommands or the documentation.

  Create or update the key named \"redis/config/connections\" to the value \"5\":

      $ tribune kv put redis/config/connections 5

  Read this value back:

      $ tribune kv get redis/config/connections

  Or get detailed key information:

      $ tribune kv get -detailed redis/config/connections

  Finally, delete the key:

      $ tribune kv delete redis/config/connections

  For more examples, ask for subcommand help or view the documentation.
";

const SERVICES_HELP: &str = "
Usage: tribune services <subcommand> [options] [args]

  This command has subcommands for interacting with services. The subcommands
  default to working with services registered with the local agent.

  To register a simple service:

      $ tribune services register -name=web

  To deregister a service:

      $ tribune services deregister -id=web

  For more examples, ask for subcommand help or view the documentation.
";

const OPERATOR_HELP: &str = "
Usage: tribune operator <subcommand> [options]

  Provides cluster-level tools for operators, such as interacting with
  the Raft subsystem. NOTE: Use this command with extreme caution, as improper
  use could lead to a cluster outage and even loss of data.

  Run tribune operator <subcommand> with no arguments for help on that
  subcommand.
";

const OPERATOR_RAFT_HELP: &str = "
Usage: tribune operator raft <subcommand> [options]

  The Raft operator command is used to interact with the Raft subsystem. The
  command can be used to verify Raft peers or in rare cases to recover quorum by
  removing invalid peers.
";

const VERSION_HELP: &str = "
Usage: tribune version [options]

  Prints the Consul version Tribune emulates (first line, for tools that parse
  `consul version`), Tribune's own version, the build revision and the protocol
  versions.
";

fn version_flags() -> FlagSet {
    FlagSet::new().string("format", "value", "Output format {pretty|json}")
}

/// `tribune version`: the emulated Consul version first (tools grep `Consul v`), then ours.
fn version(args: &[String], ui: &mut Ui<'_>) -> i32 {
    let fs = version_flags();
    let Ok(p) = parse_flags(&fs, VERSION_HELP, args, ui) else {
        return 1;
    };
    let revision = REVISION.unwrap_or("unknown");
    match p.str_or("format", "pretty") {
        "pretty" => {
            ui.output(format!("Consul v{CONSUL_VERSION}"));
            ui.output(format!("Tribune v{TRIBUNE_VERSION} (Consul-compatible)"));
            ui.output(format!("Revision {revision}"));
            ui.output(PROTOCOL_LINE);
            0
        }
        "json" => {
            let doc = serde_json::json!({
                "Version": CONSUL_VERSION,
                "Revision": REVISION.unwrap_or(""),
                "Prerelease": "",
                "RPC": {"Default": 2, "Min": 2, "Max": 3},
                "Tribune": TRIBUNE_VERSION,
            });
            match serde_json::to_string_pretty(&doc) {
                Ok(s) => {
                    ui.output(s);
                    0
                }
                Err(e) => {
                    ui.error(format!("Error encoding version: {e}"));
                    1
                }
            }
        }
        other => {
            ui.error(format!(
                "Invalid format: {other}; supported formats are pretty and json"
            ));
            1
        }
    }
}

const KEYGEN_HELP: &str = "
Usage: tribune keygen

  Generates a new encryption key that can be used to configure the
  agent to encrypt traffic. The output of this command is already
  in the proper format that the agent expects.
";

/// `tribune keygen`: 32 random bytes, standard base64 (44 characters), one line.
fn keygen(args: &[String], ui: &mut Ui<'_>) -> i32 {
    let fs = FlagSet::new();
    if parse_flags(&fs, KEYGEN_HELP, args, ui).is_err() {
        return 1;
    }
    match generate_key() {
        Ok(key) => {
            ui.output(key);
            0
        }
        Err(e) => {
            ui.error(format!("Error reading random data: {e}"));
            1
        }
    }
}

/// A fresh gossip encryption key: base64 of 32 bytes from the system's CSPRNG.
pub(crate) fn generate_key() -> Result<String, ring::error::Unspecified> {
    use base64::Engine as _;
    use ring::rand::SecureRandom as _;
    let mut key = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut key)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(key))
}

/// Parses a command's flags. On failure prints what Go's `flag` package prints (the error,
/// then the usage) and returns the exit code to use.
fn parse_flags(fs: &FlagSet, help: &str, args: &[String], ui: &mut Ui<'_>) -> Result<Parsed, i32> {
    match fs.parse(args) {
        Ok(p) => Ok(p),
        Err(FlagError::Help) => {
            ui.error(fs.usage(help));
            Err(0)
        }
        Err(e) => {
            ui.error(e.to_string());
            ui.error(fs.usage(help));
            Err(1)
        }
    }
}

/// The API client from the HTTP flags and environment, or Consul's connection error.
fn connect(p: &Parsed, ui: &mut Ui<'_>) -> Option<Client> {
    match http_flags::client(p, ui.env) {
        Ok(c) => Some(c),
        Err(e) => {
            ui.error(format!("Error connecting to Consul agent: {e}"));
            None
        }
    }
}

/// Go's `%v` of a string slice: `[a b c]`.
fn go_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

#[cfg(test)]
mod tests {
    use super::fake_agent::run_cli;
    use super::*;
    use base64::Engine as _;

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_command_has_one_entry_and_parents_exist() {
        for e in COMMANDS {
            assert_eq!(
                COMMANDS.iter().filter(|x| x.cmd == e.cmd).count(),
                1,
                "{}",
                e.name
            );
            if let Some((parent, _)) = e.name.rsplit_once(' ') {
                assert!(
                    COMMANDS.iter().any(|x| x.name == parent),
                    "no parent for {}",
                    e.name
                );
            }
            assert!(!command_help(e.cmd).is_empty());
        }
    }

    #[test]
    fn resolution_follows_mitchellh_cli() {
        let r = |a: &[&str]| format!("{:?}", resolve(&strings(a)));
        assert_eq!(r(&[]), "NoCommand");
        assert_eq!(r(&["-h"]), "TopHelp");
        assert_eq!(r(&["--version"]), "Version");
        assert_eq!(r(&["-v", "members"]), "Version");
        assert_eq!(r(&["nope"]), "Unknown");
        assert_eq!(
            r(&["members", "--token=x"]),
            "Run(Members, [\"--token=x\"])"
        );
        assert_eq!(r(&["members", "-h"]), "Help(Members)");
        assert_eq!(
            r(&["kv", "get", "-recurse", "a"]),
            "Run(KvGet, [\"-recurse\", \"a\"])"
        );
        assert_eq!(r(&["kv", "nope"]), "Run(Kv, [\"nope\"])");
        assert_eq!(
            r(&["operator", "raft", "list-peers"]),
            "Run(RaftListPeers, [])"
        );
        assert_eq!(
            r(&["-token=x", "members"]),
            "FlagsBeforeCommand(Some(Members))"
        );
        assert_eq!(
            r(&["kv", "put", "k", "--", "-h"]),
            "Run(KvPut, [\"k\", \"--\", \"-h\"])"
        );
        // A value equal to a command name after the command stays an argument.
        assert_eq!(
            r(&["kv", "put", "members", "x"]),
            "Run(KvPut, [\"members\", \"x\"])"
        );
    }

    #[tokio::test]
    async fn no_arguments_prints_the_command_list_and_fails() {
        let o = run_cli(&[], &[], b"").await;
        assert_eq!(o.code, 1);
        assert!(o.stdout.is_empty());
        assert!(o.stderr.starts_with(
            "Usage: tribune [--version] [--help] <command> [<args>]\n\nAvailable commands are:\n"
        ));
        assert!(
            o.stderr
                .contains("\n    members        Lists the members of a cluster\n"),
            "{}",
            o.stderr
        );
        assert!(!o.stderr.contains("kv get"));
        let o = run_cli(&["--help"], &[], b"").await;
        assert_eq!(o.code, 0);
        assert!(o.stderr.starts_with("Usage: tribune"));
        let o = run_cli(&["frobnicate"], &[], b"").await;
        assert_eq!(o.code, 127);
    }

    #[tokio::test]
    async fn parents_print_their_subcommands() {
        let o = run_cli(&["kv"], &[], b"").await;
        assert_eq!(o.code, 1);
        assert!(
            o.stderr.contains(
                "Subcommands:\n    delete    Removes data from the KV store\n    export "
            ),
            "{}",
            o.stderr
        );
        let o = run_cli(&["operator"], &[], b"").await;
        assert_eq!(o.code, 1);
        assert!(
            o.stderr.contains("Subcommands:\n    raft    "),
            "{}",
            o.stderr
        );
        let o = run_cli(&["catalog", "-h"], &[], b"").await;
        assert_eq!(o.code, 0);
        assert!(o
            .stderr
            .contains("    datacenters    Lists all known datacenters"));
    }

    #[tokio::test]
    async fn version_output() {
        let o = run_cli(&["version"], &[], b"").await;
        assert_eq!(o.code, 0);
        let lines: Vec<&str> = o.stdout.lines().collect();
        assert_eq!(lines[0], format!("Consul v{CONSUL_VERSION}"));
        assert_eq!(
            lines[1],
            format!("Tribune v{} (Consul-compatible)", env!("CARGO_PKG_VERSION"))
        );
        assert!(lines[2].starts_with("Revision "));
        assert_eq!(lines[3], PROTOCOL_LINE);
        assert_eq!(lines.len(), 4);
        let o = run_cli(&["--version"], &[], b"").await;
        assert!(o.stdout.starts_with("Consul v1.17.0\n"));
        let o = run_cli(&["version", "-format=json"], &[], b"").await;
        let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
        assert_eq!(v["Version"], CONSUL_VERSION);
    }

    #[tokio::test]
    async fn keygen_prints_44_chars_of_32_bytes() {
        let o = run_cli(&["keygen"], &[], b"").await;
        assert_eq!(o.code, 0);
        let key = o.stdout.strip_suffix('\n').unwrap();
        assert_eq!(key.len(), 44);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(key)
            .unwrap();
        assert_eq!(raw.len(), 32);
        assert_ne!(generate_key().unwrap(), generate_key().unwrap());
    }

    #[tokio::test]
    async fn unknown_flags_print_go_error_and_usage() {
        let o = run_cli(&["members", "-bogus"], &[], b"").await;
        assert_eq!(o.code, 1);
        assert!(
            o.stderr
                .starts_with("flag provided but not defined: -bogus\nUsage: tribune members"),
            "{}",
            o.stderr
        );
        let o = run_cli(&["-token=x", "members"], &[], b"").await;
        assert_eq!(o.code, 1);
        assert!(o.stderr.starts_with("Invalid flags before the subcommand."));
    }
}
