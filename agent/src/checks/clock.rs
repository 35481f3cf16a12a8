//! The runner's sense of time, injected: Tokio's clock in production, a manual clock in
//! tests, so that intervals, TTLs and probe timeouts are tested without sleeping.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// A future that completes at a deadline.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Where the runner reads the time and waits for it.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Instant;
    fn sleep_until(&self, deadline: Instant) -> Sleep;
}

/// Tokio's clock (and so Tokio's paused time, where a test enables it).
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn sleep_until(&self, deadline: Instant) -> Sleep {
        Box::pin(tokio::time::sleep_until(deadline))
    }
}

/// A clock that moves only when told to. Sleepers wake as soon as [`ManualClock::advance`]
/// reaches their deadline.
#[derive(Debug)]
pub struct ManualClock {
    start: Instant,
    now: watch::Sender<Instant>,
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl ManualClock {
    pub fn new() -> ManualClock {
        let start = Instant::now();
        ManualClock {
            start,
            now: watch::Sender::new(start),
        }
    }

    /// Moves time forward, waking every sleeper whose deadline is reached.
    pub fn advance(&self, by: Duration) {
        self.now.send_modify(|now| *now += by);
    }

    /// How far the clock moved since it was made.
    pub fn elapsed(&self) -> Duration {
        *self.now.borrow() - self.start
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.now.borrow()
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        let mut now = self.now.subscribe();
        Box::pin(async move {
            // A dropped clock never reaches any deadline again.
            if now.wait_for(|now| *now >= deadline).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

/// The deadline passed before the future completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Elapsed;

/// `tokio::time::timeout_at` on an injected clock.
pub(crate) async fn timeout_at<F: Future>(
    clock: &dyn Clock,
    deadline: Instant,
    fut: F,
) -> Result<F::Output, Elapsed> {
    tokio::select! {
        biased;
        out = fut => Ok(out),
        () = clock.sleep_until(deadline) => Err(Elapsed),
    }
}

/// Lets every other ready task on a current-thread runtime run until it blocks.
#[cfg(test)]
pub(crate) async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_clock_wakes_sleepers_at_their_deadline() {
        let clock = std::sync::Arc::new(ManualClock::new());
        let deadline = clock.now() + Duration::from_secs(10);
        let sleeper = tokio::spawn(clock.sleep_until(deadline));
        settle().await;
        clock.advance(Duration::from_secs(9));
        settle().await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::from_secs(1));
        sleeper.await.unwrap();
        assert_eq!(clock.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test]
    async fn timeout_on_the_manual_clock() {
        let clock = ManualClock::new();
        let deadline = clock.now() + Duration::from_secs(1);
        assert_eq!(timeout_at(&clock, deadline, async { 7 }).await, Ok(7));
        clock.advance(Duration::from_secs(1));
        let never = std::future::pending::<()>();
        assert_eq!(timeout_at(&clock, deadline, never).await, Err(Elapsed));
    }
}
