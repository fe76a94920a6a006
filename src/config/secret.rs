//! A credential that never leaves the process by accident.
//!
//! `Secret` has no `Display`, its `Debug` prints `<redacted>`, and the only way
//! to read it is [`Secret::expose`], so a grep for `expose` finds every place a
//! password is used.

use std::fmt;

/// A password or other credential. `Debug` prints `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Box<str>);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<Box<str>>) -> Self {
        Secret(value.into())
    }

    /// The credential itself. Only for authentication code.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Read from a config string, so a literal password is a `Secret` from the
/// moment it is parsed and no `Debug` of a config entry can print it.
impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

/// Compares two byte strings without leaking where they differ, or whether
/// their lengths do: both are hashed (SHA-256, with a per-process key) and
/// the fixed-length digests compared in constant time.
///
/// Used for every credential comparison, so a recorder cannot learn a password
/// (or a digest response) byte by byte, or its length, from response timing.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    static KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    let key = KEY.get_or_init(rand::random);
    let digest = |x: &[u8]| {
        let mut h = Sha256::new();
        h.update(key);
        h.update(x);
        h.finalize()
    };
    let (da, db) = (digest(a), digest(b));
    let mut diff = 0u8;
    for (x, y) in da.iter().zip(db.iter()) {
        diff |= x ^ y;
    }
    // black_box keeps the optimizer from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }
}
