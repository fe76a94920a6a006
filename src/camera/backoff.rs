//! Reconnect delays: exponential, with jitter, capped, and reset after a
//! session that stayed healthy long enough.

use std::time::Duration;

/// See the module docs.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    reset_after: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration, reset_after: Duration) -> Self {
        Backoff {
            initial,
            max,
            reset_after,
            current: initial,
        }
    }

    /// Forget past failures.
    pub fn reset(&mut self) {
        self.current = self.initial;
    }

    /// The delay before the next attempt, after a session that lasted
    /// `session`. Uses "equal jitter": half the step fixed, half random, so
    /// cameras that failed together do not reconnect together.
    pub fn next_delay(&mut self, session: Duration) -> Duration {
        if session >= self.reset_after {
            self.current = self.initial;
        }
        let step = self.current;
        self.current = (self.current * 2).min(self.max);
        let half = step / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_cap_with_jitter_and_resets() {
        let s = Duration::from_secs;
        let mut b = Backoff::new(s(1), s(60), s(60));
        let mut steps = Vec::new();
        for _ in 0..9 {
            let d = b.next_delay(s(0));
            steps.push(d);
        }
        let expect = [1u64, 2, 4, 8, 16, 32, 60, 60, 60];
        for (d, e) in steps.iter().zip(expect) {
            let e = s(e);
            assert!(
                *d >= e / 2 && *d <= e,
                "{d:?} not within [{:?}, {e:?}]",
                e / 2
            );
        }
        // A healthy minute resets.
        let d = b.next_delay(s(61));
        assert!(d <= s(1));
        b.next_delay(s(0));
        b.reset();
        assert!(b.next_delay(s(0)) <= s(1));
    }
}
