//! Consul's rules for a check definition (`CheckType.Validate` and the script gate in
//! `Agent.addCheck`), with Consul's messages, and the choice of the check's type.

use tribune_api::types::CheckDefinition;

use super::{CheckError, CheckType, RunnerOptions};

pub(crate) const MSG_INTERVAL_AND_TTL: &str = "Interval and TTL cannot both be specified";
pub(crate) const MSG_INTERVAL_REQUIRED: &str =
    "Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks";
pub(crate) const MSG_ALIAS_INTERVAL: &str = "Interval cannot be set for Alias checks";
pub(crate) const MSG_ALIAS_TTL: &str = "TTL must be not be set for Alias checks";
pub(crate) const MSG_TTL_REQUIRED: &str = "TTL must be > 0 for TTL checks";
pub(crate) const MSG_OUTPUT_MAX_SIZE: &str = "MaxOutputMaxSize must be positive";
pub(crate) const MSG_FAILURES_ORDER: &str =
    "FailuresBeforeWarning can't be higher than FailuresBeforeCritical";
pub(crate) const MSG_TYPE_NOT_VALID: &str = "Check type is not valid";
/// Not Consul's (Consul 1.1 dropped `Script` and then rejected it as an unknown field), but a
/// definition that still uses it deserves better than "TTL must be > 0".
pub(crate) const MSG_SCRIPT_REMOVED: &str =
    "Script checks take 'args' (ScriptArgs); the single-string 'script' field was removed in Consul 1.1";
pub(crate) const MSG_DOCKER_UNSUPPORTED: &str =
    "Docker checks (DockerContainerID) are not supported by Tribune";
pub(crate) const MSG_H2PING_UNSUPPORTED: &str = "H2PING checks are not supported by Tribune";

/// Validates a definition the way Consul does, returning its type.
///
/// `from_config` says the definition came from a local config file: script checks are
/// allowed from there with `enable_local_script_checks` (or `enable_script_checks`), and
/// from the HTTP API only with `enable_script_checks`.
///
/// A definition without any type field fails with Consul's `TTL must be > 0 for TTL checks`
/// (Consul treats anything that is not an interval or alias check as a TTL check).
/// Docker and H2PING checks, which Consul accepts, are refused here rather than accepted
/// and never run.
pub fn validate(
    def: &CheckDefinition,
    opts: &RunnerOptions,
    from_config: bool,
) -> Result<CheckType, CheckError> {
    let invalid = |msg: &str| Err(CheckError::Invalid(msg.to_string()));

    if !def.script.is_empty() && def.script_args.is_empty() {
        return invalid(MSG_SCRIPT_REMOVED);
    }

    let is_script = !def.script_args.is_empty();
    let is_alias = !def.alias_node.is_empty() || !def.alias_service.is_empty();
    let is_wasm = def.wasm.is_some();
    let interval_check = is_script
        || !def.http.is_empty()
        || !def.tcp.is_empty()
        || !def.udp.is_empty()
        || !def.grpc.is_empty()
        || !def.h2ping.is_empty()
        || is_wasm;
    let has_interval = def.interval.is_some_and(|d| !d.is_zero());
    let has_ttl = def.ttl.is_some_and(|d| !d.is_zero());

    // Consul's CheckType.Validate, rule for rule and in its order.
    if has_interval && has_ttl {
        return invalid(MSG_INTERVAL_AND_TTL);
    }
    if interval_check && !has_interval {
        return invalid(MSG_INTERVAL_REQUIRED);
    }
    if interval_check && is_alias {
        return invalid(MSG_ALIAS_INTERVAL);
    }
    if is_alias && has_ttl {
        return invalid(MSG_ALIAS_TTL);
    }
    if !interval_check && !is_alias && !has_ttl {
        return invalid(MSG_TTL_REQUIRED);
    }
    if def.output_max_size < 0 {
        return invalid(MSG_OUTPUT_MAX_SIZE);
    }
    if def.failures_before_warning > def.failures_before_critical {
        return invalid(MSG_FAILURES_ORDER);
    }

    // Agent.addCheck: the script gate comes after validation.
    if is_script {
        let allowed = if from_config {
            opts.enable_local_script_checks || opts.enable_script_checks
        } else {
            opts.enable_script_checks
        };
        if !allowed {
            return Err(if from_config {
                CheckError::LocalScriptsDisabled
            } else {
                CheckError::ScriptsDisabled
            });
        }
    }

    // Agent.addCheck's switch, in its order; Wasm is ours and comes last.
    let kind = if has_ttl {
        CheckType::Ttl
    } else if !def.http.is_empty() && has_interval {
        CheckType::Http
    } else if !def.tcp.is_empty() && has_interval {
        CheckType::Tcp
    } else if !def.udp.is_empty() && has_interval {
        CheckType::Udp
    } else if !def.grpc.is_empty() && has_interval {
        CheckType::Grpc
    } else if is_script && !def.docker_container_id.is_empty() && has_interval {
        return invalid(MSG_DOCKER_UNSUPPORTED);
    } else if is_script && has_interval {
        CheckType::Script
    } else if !def.h2ping.is_empty() && has_interval {
        return invalid(MSG_H2PING_UNSUPPORTED);
    } else if is_alias {
        CheckType::Alias
    } else if is_wasm && has_interval {
        CheckType::Wasm
    } else {
        return invalid(MSG_TYPE_NOT_VALID);
    };
    Ok(kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tribune_api::duration::GoDuration;

    fn secs(s: u64) -> Option<GoDuration> {
        Some(GoDuration(Duration::from_secs(s)))
    }

    fn opts() -> RunnerOptions {
        RunnerOptions::default()
    }

    fn msg(def: &CheckDefinition) -> String {
        validate(def, &opts(), false).unwrap_err().to_string()
    }

    #[test]
    fn picks_each_type() {
        let cases: Vec<(CheckDefinition, CheckType)> = vec![
            (
                CheckDefinition {
                    http: "http://x/".into(),
                    interval: secs(10),
                    ..Default::default()
                },
                CheckType::Http,
            ),
            (
                CheckDefinition {
                    tcp: "x:1".into(),
                    interval: secs(10),
                    ..Default::default()
                },
                CheckType::Tcp,
            ),
            (
                CheckDefinition {
                    udp: "x:1".into(),
                    interval: secs(10),
                    ..Default::default()
                },
                CheckType::Udp,
            ),
            (
                CheckDefinition {
                    grpc: "x:1/svc".into(),
                    interval: secs(10),
                    ..Default::default()
                },
                CheckType::Grpc,
            ),
            (
                CheckDefinition {
                    ttl: secs(30),
                    ..Default::default()
                },
                CheckType::Ttl,
            ),
            (
                CheckDefinition {
                    alias_service: "web".into(),
                    ..Default::default()
                },
                CheckType::Alias,
            ),
            (
                CheckDefinition {
                    wasm: Some(serde_json::json!({"plugin": "p"})),
                    interval: secs(10),
                    ..Default::default()
                },
                CheckType::Wasm,
            ),
        ];
        for (def, want) in cases {
            assert_eq!(validate(&def, &opts(), false).unwrap(), want, "{def:?}");
        }
    }

    #[test]
    fn interval_and_ttl_both() {
        let def = CheckDefinition {
            ttl: secs(10),
            interval: secs(10),
            ..Default::default()
        };
        assert_eq!(msg(&def), "Interval and TTL cannot both be specified");
        let def = CheckDefinition {
            http: "http://x/".into(),
            ttl: secs(10),
            interval: secs(10),
            ..Default::default()
        };
        assert_eq!(msg(&def), "Interval and TTL cannot both be specified");
    }

    #[test]
    fn missing_interval() {
        for def in [
            CheckDefinition {
                http: "http://x/".into(),
                ..Default::default()
            },
            CheckDefinition {
                tcp: "x:1".into(),
                interval: secs(0),
                ..Default::default()
            },
            CheckDefinition {
                grpc: "x:1".into(),
                ..Default::default()
            },
            CheckDefinition {
                udp: "x:1".into(),
                ..Default::default()
            },
            CheckDefinition {
                script_args: vec!["true".into()],
                ..Default::default()
            },
            CheckDefinition {
                wasm: Some(serde_json::json!({})),
                ..Default::default()
            },
        ] {
            assert_eq!(
                msg(&def),
                "Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks"
            );
        }
    }

    #[test]
    fn missing_ttl() {
        let def = CheckDefinition {
            name: "app".into(),
            ttl: secs(0),
            ..Default::default()
        };
        assert_eq!(msg(&def), "TTL must be > 0 for TTL checks");
    }

    #[test]
    fn no_type_is_consuls_ttl_message() {
        // Consul treats anything that is not an interval or alias check as a TTL check.
        let def = CheckDefinition {
            name: "nothing".into(),
            ..Default::default()
        };
        assert_eq!(msg(&def), "TTL must be > 0 for TTL checks");
        let def = CheckDefinition {
            interval: secs(10),
            ..Default::default()
        };
        assert_eq!(msg(&def), "TTL must be > 0 for TTL checks");
    }

    #[test]
    fn alias_rules() {
        let def = CheckDefinition {
            alias_service: "web".into(),
            http: "http://x/".into(),
            interval: secs(10),
            ..Default::default()
        };
        assert_eq!(msg(&def), "Interval cannot be set for Alias checks");
        let def = CheckDefinition {
            alias_node: "n1".into(),
            ttl: secs(10),
            ..Default::default()
        };
        assert_eq!(msg(&def), "TTL must be not be set for Alias checks");
    }

    #[test]
    fn failures_before_warning_above_critical() {
        let def = CheckDefinition {
            ttl: secs(10),
            failures_before_warning: 3,
            failures_before_critical: 2,
            ..Default::default()
        };
        assert_eq!(
            msg(&def),
            "FailuresBeforeWarning can't be higher than FailuresBeforeCritical"
        );
        // Unset (0) warning threshold defaults to the critical one and is valid.
        let def = CheckDefinition {
            ttl: secs(10),
            failures_before_warning: 0,
            failures_before_critical: 2,
            ..Default::default()
        };
        assert_eq!(validate(&def, &opts(), false).unwrap(), CheckType::Ttl);
    }

    #[test]
    fn negative_output_max_size() {
        let def = CheckDefinition {
            ttl: secs(10),
            output_max_size: -1,
            ..Default::default()
        };
        assert_eq!(msg(&def), "MaxOutputMaxSize must be positive");
    }

    fn script_def() -> CheckDefinition {
        CheckDefinition {
            script_args: vec!["/bin/true".into()],
            interval: secs(10),
            ..Default::default()
        }
    }

    #[test]
    fn script_from_remote_needs_enable_script_checks() {
        let def = script_def();
        let local_only = RunnerOptions {
            enable_local_script_checks: true,
            ..opts()
        };
        let err = validate(&def, &local_only, false).unwrap_err();
        assert_eq!(err, CheckError::ScriptsDisabled);
        assert_eq!(
            err.to_string(),
            "Scripts are disabled on this agent from remote calls; to enable, configure 'enable_script_checks' to true"
        );
        let all = RunnerOptions {
            enable_script_checks: true,
            ..opts()
        };
        assert_eq!(validate(&def, &all, false).unwrap(), CheckType::Script);
    }

    #[test]
    fn script_from_config_needs_local_or_full_enable() {
        let def = script_def();
        let err = validate(&def, &opts(), true).unwrap_err();
        assert_eq!(err, CheckError::LocalScriptsDisabled);
        assert_eq!(
            err.to_string(),
            "Scripts are disabled on this agent; to enable, configure 'enable_script_checks' or 'enable_local_script_checks' to true"
        );
        let local_only = RunnerOptions {
            enable_local_script_checks: true,
            ..opts()
        };
        assert_eq!(
            validate(&def, &local_only, true).unwrap(),
            CheckType::Script
        );
        let all = RunnerOptions {
            enable_script_checks: true,
            ..opts()
        };
        assert_eq!(validate(&def, &all, true).unwrap(), CheckType::Script);
    }

    #[test]
    fn validation_errors_come_before_the_script_gate() {
        let def = CheckDefinition {
            script_args: vec!["x".into()],
            ..Default::default()
        };
        assert_eq!(
            msg(&def),
            "Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks"
        );
    }

    #[test]
    fn unsupported_kinds_are_refused_clearly() {
        let all = RunnerOptions {
            enable_script_checks: true,
            ..opts()
        };
        let docker = CheckDefinition {
            docker_container_id: "abc".into(),
            ..script_def()
        };
        assert_eq!(
            validate(&docker, &all, false).unwrap_err().to_string(),
            MSG_DOCKER_UNSUPPORTED
        );
        let h2 = CheckDefinition {
            h2ping: "x:1".into(),
            interval: secs(10),
            ..Default::default()
        };
        assert_eq!(msg(&h2), MSG_H2PING_UNSUPPORTED);
        let legacy = CheckDefinition {
            script: "true".into(),
            interval: secs(10),
            ..Default::default()
        };
        assert_eq!(msg(&legacy), MSG_SCRIPT_REMOVED);
    }
}
