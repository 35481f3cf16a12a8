//! Flap damping: Consul's `StatusHandler`, as a pure state machine.
//!
//! A passing or warning result counts as a success, anything else as a failure. A success is
//! reported once `SuccessBeforePassing` successes came in a row; a failure is reported as
//! critical once `FailuresBeforeCritical` failures came in a row, and as warning (with the
//! failure's output) once `FailuresBeforeWarning` did. Until a threshold is reached the
//! result is held back and the previously reported status stands.
//!
//! As in Consul, both counters start at their thresholds, so the very first result after a
//! check starts is reported at once; damping applies to changes after that.

use super::{Outcome, Status};

#[derive(Clone, Debug)]
pub(crate) struct Damper {
    success_before_passing: u32,
    failures_before_warning: u32,
    failures_before_critical: u32,
    successes: u32,
    failures: u32,
}

/// What to do with one result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Report this status and output.
    Report(Outcome),
    /// Below a threshold: keep the previous status.
    Hold { successes: u32, failures: u32 },
}

fn threshold(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

impl Damper {
    /// Thresholds as they appear in a definition; 0 or less means "report at once", and an
    /// unset `failures_before_warning` (0) takes `failures_before_critical`'s value.
    pub(crate) fn new(
        success_before_passing: i64,
        failures_before_warning: i64,
        failures_before_critical: i64,
    ) -> Damper {
        let success_before_passing = threshold(success_before_passing);
        let failures_before_critical = threshold(failures_before_critical);
        let failures_before_warning = match threshold(failures_before_warning) {
            0 => failures_before_critical,
            n => n,
        };
        Damper {
            success_before_passing,
            failures_before_warning,
            failures_before_critical,
            successes: success_before_passing,
            failures: failures_before_critical,
        }
    }

    pub(crate) fn observe(&mut self, outcome: Outcome) -> Verdict {
        match outcome.status {
            Status::Passing | Status::Warning => {
                self.successes = self.successes.saturating_add(1);
                self.failures = 0;
                if self.successes >= self.success_before_passing {
                    return Verdict::Report(outcome);
                }
            }
            Status::Critical => {
                self.failures = self.failures.saturating_add(1);
                self.successes = 0;
                if self.failures >= self.failures_before_critical {
                    return Verdict::Report(outcome);
                }
                if self.failures >= self.failures_before_warning {
                    return Verdict::Report(Outcome {
                        status: Status::Warning,
                        ..outcome
                    });
                }
            }
        }
        Verdict::Hold {
            successes: self.successes,
            failures: self.failures,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass() -> Outcome {
        Outcome::passing("ok")
    }
    fn warn() -> Outcome {
        Outcome::warning("slow")
    }
    fn fail() -> Outcome {
        Outcome::critical("down")
    }

    /// Runs a sequence and renders each verdict as the reported status or "-" for a hold.
    fn run(d: &mut Damper, seq: &[Outcome]) -> Vec<&'static str> {
        seq.iter()
            .map(|o| match d.observe(o.clone()) {
                Verdict::Report(o) => o.status.as_str(),
                Verdict::Hold { .. } => "-",
            })
            .collect()
    }

    #[test]
    fn no_thresholds_reports_everything() {
        let mut d = Damper::new(0, 0, 0);
        assert_eq!(
            run(&mut d, &[pass(), fail(), warn(), fail(), pass()]),
            ["passing", "critical", "warning", "critical", "passing"]
        );
    }

    #[test]
    fn first_result_is_reported_at_once() {
        let mut d = Damper::new(3, 0, 3);
        assert_eq!(run(&mut d, &[pass()]), ["passing"]);
        let mut d = Damper::new(3, 0, 3);
        assert_eq!(run(&mut d, &[fail()]), ["critical"]);
    }

    #[test]
    fn success_before_passing_after_a_failure() {
        let mut d = Damper::new(3, 0, 0);
        assert_eq!(
            run(&mut d, &[fail(), pass(), pass(), pass(), pass()]),
            ["critical", "-", "-", "passing", "passing"]
        );
        // A failure in the middle resets the streak.
        assert_eq!(
            run(
                &mut d,
                &[fail(), pass(), pass(), fail(), pass(), pass(), pass()]
            ),
            ["critical", "-", "-", "critical", "-", "-", "passing"]
        );
    }

    #[test]
    fn failures_before_critical() {
        let mut d = Damper::new(0, 0, 3);
        assert_eq!(
            run(
                &mut d,
                &[pass(), fail(), fail(), fail(), fail(), pass(), fail()]
            ),
            ["passing", "-", "-", "critical", "critical", "passing", "-"]
        );
    }

    #[test]
    fn failures_before_warning_then_critical() {
        let mut d = Damper::new(2, 1, 3);
        let mut reported = Vec::new();
        for o in [pass(), fail(), fail(), fail(), pass(), pass(), fail()] {
            reported.push(match d.observe(o) {
                Verdict::Report(o) => format!("{}:{}", o.status, o.output),
                Verdict::Hold {
                    successes,
                    failures,
                } => format!("hold {successes}/{failures}"),
            });
        }
        assert_eq!(
            reported,
            [
                "passing:ok",
                // The warning carries the failing probe's output.
                "warning:down",
                "warning:down",
                "critical:down",
                "hold 1/0",
                "passing:ok",
                "warning:down",
            ]
        );
    }

    #[test]
    fn warning_results_count_as_successes() {
        let mut d = Damper::new(2, 0, 2);
        assert_eq!(
            run(&mut d, &[fail(), fail(), warn(), warn(), fail(), warn()]),
            ["critical", "critical", "-", "warning", "-", "-"]
        );
    }

    #[test]
    fn negative_thresholds_mean_none() {
        let mut d = Damper::new(-1, -5, -2);
        assert_eq!(run(&mut d, &[fail(), pass()]), ["critical", "passing"]);
    }
}
