//! Bounded polling: the only way a suite waits for another process.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::bail;

/// Pause between two probes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Calls `probe` every [`POLL_INTERVAL`] until it returns `Ok`, and returns
/// that value. An `Err` from the probe means "not yet" and says why; when
/// `timeout` runs out the error names `what`, the time waited and the last
/// reason, so a failure reads like "timed out after 5s waiting for the target
/// to disappear: still active: {...}". A probe that hangs is cut off at the
/// deadline too.
pub async fn wait_until<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let start = Instant::now();
    let deadline = start + timeout;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        let last = match tokio::time::timeout(left.max(POLL_INTERVAL), probe()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(err)) => format!("{err:#}"),
            Err(_) => "the last probe did not finish before the deadline".to_owned(),
        };
        if Instant::now() >= deadline {
            bail!(
                "timed out after {:.1?} ({attempts} probes) waiting for {what}: {last}",
                start.elapsed()
            );
        }
        tokio::time::sleep(POLL_INTERVAL.min(deadline.saturating_duration_since(Instant::now())))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_first_success() {
        let mut n = 0;
        let got = wait_until(Duration::from_secs(5), "n to reach 3", || {
            n += 1;
            let n = n;
            async move {
                if n >= 3 {
                    Ok(n)
                } else {
                    bail!("n is {n}")
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(got, 3);
    }

    #[tokio::test]
    async fn timeout_names_what_and_the_last_reason() {
        let err = wait_until(Duration::from_millis(300), "the impossible", || async {
            anyhow::Result::<()>::Err(anyhow::anyhow!("still impossible"))
        })
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("waiting for the impossible") && err.contains("still impossible"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_hanging_probe_is_cut_off() {
        let start = Instant::now();
        let err = wait_until(Duration::from_millis(300), "a hang", || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(())
        })
        .await
        .unwrap_err()
        .to_string();
        assert!(start.elapsed() < Duration::from_secs(5), "{err}");
        assert!(err.contains("did not finish"), "{err}");
    }
}
