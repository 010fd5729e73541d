//! Polling with a deadline.

use std::time::{Duration, Instant};

/// A condition that did not hold in time.
#[derive(Debug, thiserror::Error)]
#[error("timed out after {timeout:?} waiting for {what}")]
pub struct Timeout {
    pub what: String,
    pub timeout: Duration,
}

/// Calls `f` every 200 ms until it returns true or `timeout` passes.
pub fn wait_for(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) -> Result<(), Timeout> {
    wait_for_value(timeout, what, || f().then_some(()))
}

/// Calls `f` every 200 ms until it returns `Some` or `timeout` passes.
pub fn wait_for_value<T>(
    timeout: Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
) -> Result<T, Timeout> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            return Err(Timeout {
                what: what.to_owned(),
                timeout,
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_value_once_ready() {
        let mut n = 0;
        let v = wait_for_value(Duration::from_secs(5), "n", || {
            n += 1;
            (n == 3).then_some(n)
        });
        assert_eq!(v.unwrap(), 3);
    }

    #[test]
    fn times_out() {
        let err = wait_for(Duration::from_millis(300), "never", || false).unwrap_err();
        assert_eq!(err.what, "never");
    }
}
