//! Unique names for every Docker object a test creates.

use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The prefix of every name this process hands out: `tiered-e2e-<pid>`.
pub fn run_prefix() -> String {
    format!("tiered-e2e-{}", std::process::id())
}

/// `tiered-e2e-<pid>-<n>-<what>`: unique across concurrent test processes and
/// within one; lowercase, so valid for plugins, images, volumes, containers,
/// networks, compose projects and stacks. `what` should be short lowercase
/// `[a-z0-9-]`.
pub fn unique(what: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}-{n}-{what}", run_prefix())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_differ_and_carry_the_pid() {
        let a = unique("vol");
        let b = unique("vol");
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("tiered-e2e-{}-", std::process::id())));
        assert!(a.ends_with("-vol"));
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'));
    }
}
