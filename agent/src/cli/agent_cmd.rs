//! `tribune agent` and `tribune validate`: thin hand-offs to [`crate::config`] and
//! [`crate::agent`]. The agent's flags belong to `config` (they map onto config keys), so
//! this file only prints what comes back: `==> ` + errors, warnings, the exit code.

use super::flags::FlagSet;
use super::parse_flags;
use super::ui::Ui;
use crate::config::{self, ConfigErrors, ConfigFormat};
use std::path::PathBuf;

const VALIDATE_HELP: &str = "
Usage: tribune validate [options] FILE_OR_DIRECTORY...

  Performs a thorough sanity test on configuration files. For each file
  or directory given, the validate command will attempt to parse the
  contents just as the \"tribune agent\" command would, and catch any errors.

  This is useful to do a test of the configuration only, without actually
  starting the agent. This performs all of the validation the agent would, so
  this should be given the complete set of configuration files that are going
  to be loaded by the agent. This command cannot operate on partial
  configuration fragments since those won't pass the full agent validation.

  Returns 0 if the configuration is valid, or 1 if there are problems.

      $ tribune validate -config-file /etc/tribune/config.json -config-file /etc/tribune/extra.json
";

pub(super) fn agent_help() -> String {
    config::agent_flags_usage().trim_end().to_string()
}

fn validate_flags() -> FlagSet {
    FlagSet::new()
        .string("config-format", "format", "Config files are in this format irrespective of their extension. Must be 'hcl' or 'json'")
        .bool("quiet", "When given, a successful run will produce no output.")
}

pub(super) fn validate_help() -> String {
    validate_flags().usage(VALIDATE_HELP)
}

/// Runs the agent on its own multi-threaded runtime until it stops. Called from
/// [`super::main`] before any other runtime exists.
pub(super) fn run_agent(args: &[String], ui: &mut Ui<'_>) -> i32 {
    let flags = match config::parse_agent_flags(args) {
        Ok(f) => f,
        Err(errs) => {
            print_errors("==> ", &errs, ui);
            return 1;
        }
    };
    if flags.help {
        ui.error(agent_help());
        return 0;
    }
    let (cfg, warnings) = match config::load(&flags) {
        Ok(loaded) => loaded,
        Err(errs) => {
            print_errors("==> ", &errs, ui);
            return 1;
        }
    };
    for w in warnings {
        ui.error(w);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tribune")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            ui.error(format!("==> Error starting the async runtime: {e}"));
            return 1;
        }
    };
    match rt.block_on(crate::agent::run(cfg, flags)) {
        Ok(()) => 0,
        Err(e) => {
            ui.error(format!("==> {e:#}"));
            1
        }
    }
}

/// `tribune validate PATH...`.
pub(super) fn validate(args: &[String], ui: &mut Ui<'_>) -> i32 {
    let fs = validate_flags();
    let p = match parse_flags(&fs, VALIDATE_HELP, args, ui) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if p.args.is_empty() {
        ui.error("Must specify at least one config file or directory");
        return 1;
    }
    let format = match p.str("config-format").filter(|f| !f.is_empty()) {
        None => None,
        Some(f) => match ConfigFormat::parse(f) {
            Some(f) => Some(f),
            None => {
                ui.error(format!(
                    "Invalid config format: {f} (must be 'hcl' or 'json')"
                ));
                return 1;
            }
        },
    };
    let paths: Vec<PathBuf> = p.args.iter().map(PathBuf::from).collect();
    match config::validate_paths_as(&paths, format) {
        Ok((_, warnings)) => {
            for w in warnings {
                ui.error(w);
            }
            if !p.bool("quiet") {
                ui.output("Configuration is valid!");
            }
            0
        }
        Err(errs) => {
            print_errors("Config validation failed: ", &errs, ui);
            1
        }
    }
}

/// `prefix` + every error, one per line (the prefix on the first line, as Consul's
/// prefixed UI prints a multi-line error).
fn print_errors(prefix: &str, errs: &ConfigErrors, ui: &mut Ui<'_>) {
    let lines: Vec<String> = errs.iter().map(ToString::to_string).collect();
    if lines.is_empty() {
        ui.error(format!("{prefix}invalid configuration"));
        return;
    }
    ui.error(format!("{prefix}{}", lines.join("\n")));
}

#[cfg(test)]
mod tests {
    use super::super::fake_agent::run_cli;

    #[tokio::test]
    async fn validate_reports_success_and_every_error() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.json");
        std::fs::write(
            &good,
            r#"{"datacenter": "dc1", "node_name": "n1", "server": true}"#,
        )
        .unwrap();
        let good = good.to_str().unwrap();
        let o = run_cli(&["validate", good], &[], b"").await;
        assert_eq!(
            (o.code, o.stdout.as_str()),
            (0, "Configuration is valid!\n"),
            "{o:?}"
        );
        let o = run_cli(&["validate", "-quiet", good], &[], b"").await;
        assert_eq!((o.code, o.stdout.as_str()), (0, ""));

        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, r#"{"datacenterr": "dc1", "portz": {}}"#).unwrap();
        let o = run_cli(&["validate", bad.to_str().unwrap()], &[], b"").await;
        assert_eq!(o.code, 1);
        assert!(
            o.stderr.starts_with("Config validation failed: "),
            "{}",
            o.stderr
        );
        assert!(
            o.stderr.contains("datacenterr") && o.stderr.contains("portz"),
            "{}",
            o.stderr
        );

        let o = run_cli(&["validate"], &[], b"").await;
        assert_eq!(
            (o.code, o.stderr.as_str()),
            (1, "Must specify at least one config file or directory\n")
        );
    }
}
