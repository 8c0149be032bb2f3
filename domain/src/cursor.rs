//! Opaque pagination cursors.
//!
//! A cursor names the last item of a page by `(at, id)` (keyset pagination,
//! newest first) and is sealed with an HMAC under a server key and the
//! *scope* of the list it belongs to (say, one user's refresh log). A cursor
//! the server never issued, or one issued for another list, does not open:
//! the caller gets 422 instead of a page that silently means nothing.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::refresh_token::RefreshSecret;
use crate::time::Timestamp;

const PAYLOAD_LEN: usize = 16;
const TAG_LEN: usize = 16;

/// The position after which the next page starts (exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub at: Timestamp,
    pub id: i64,
}

/// The key cursors are sealed with. `Debug` is redacted.
#[derive(Clone)]
pub struct CursorKey([u8; 32]);

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey([REDACTED])")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a cursor this list issued")]
pub struct CursorError;

impl CursorKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A key of its own, derived from the server's refresh secret, so that
    /// every instance sharing the keys directory accepts the others' cursors.
    pub fn derive(secret: &RefreshSecret) -> Self {
        let mut mac = mac(secret.as_bytes());
        mac.update(b"tokenwarden/cursor-key/v1");
        Self(mac.finalize().into_bytes().into())
    }

    fn tag(&self, scope: &str, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = mac(&self.0);
        mac.update(b"tokenwarden/cursor/v1:");
        mac.update(scope.as_bytes());
        mac.update(&[0]);
        mac.update(payload);
        mac
    }
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this cannot fail.
    <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
}

impl Cursor {
    /// The cursor as text for the list named `scope`.
    pub fn seal(&self, key: &CursorKey, scope: &str) -> String {
        let mut bytes = Vec::with_capacity(PAYLOAD_LEN + TAG_LEN);
        bytes.extend_from_slice(&self.at.as_millis().to_be_bytes());
        bytes.extend_from_slice(&self.id.to_be_bytes());
        let tag = key.tag(scope, &bytes).finalize().into_bytes();
        bytes.extend_from_slice(&tag[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Opens a cursor issued by [`Cursor::seal`] for the same `scope`.
    ///
    /// # Errors
    /// [`CursorError`] for anything else.
    pub fn open(text: &str, key: &CursorKey, scope: &str) -> Result<Self, CursorError> {
        if text.len() > 64 {
            return Err(CursorError);
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| CursorError)?;
        if bytes.len() != PAYLOAD_LEN + TAG_LEN {
            return Err(CursorError);
        }
        let (payload, tag) = bytes.split_at(PAYLOAD_LEN);
        key.tag(scope, payload)
            .verify_truncated_left(tag)
            .map_err(|_| CursorError)?;
        let (at, id) = payload.split_at(8);
        let at = i64::from_be_bytes(at.try_into().map_err(|_| CursorError)?);
        let id = i64::from_be_bytes(id.try_into().map_err(|_| CursorError)?);
        Ok(Self {
            at: Timestamp::from_millis(at),
            id,
        })
    }
}

/// The position after which the next page of a list ordered by name starts
/// (exclusive): the last name of the page, at most 64 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameCursor(pub String);

impl NameCursor {
    const MAX_NAME: usize = 64;

    /// The cursor as text for the list named `scope`.
    pub fn seal(&self, key: &CursorKey, scope: &str) -> String {
        let mut bytes = self.0.as_bytes().to_vec();
        let tag = key.tag(scope, &bytes).finalize().into_bytes();
        bytes.extend_from_slice(&tag[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Opens a cursor issued by [`NameCursor::seal`] for the same `scope`.
    ///
    /// # Errors
    /// [`CursorError`] for anything else.
    pub fn open(text: &str, key: &CursorKey, scope: &str) -> Result<Self, CursorError> {
        if text.len() > (Self::MAX_NAME + TAG_LEN).div_ceil(3) * 4 {
            return Err(CursorError);
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| CursorError)?;
        if bytes.len() <= TAG_LEN {
            return Err(CursorError);
        }
        let (payload, tag) = bytes.split_at(bytes.len() - TAG_LEN);
        key.tag(scope, payload)
            .verify_truncated_left(tag)
            .map_err(|_| CursorError)?;
        String::from_utf8(payload.to_vec())
            .map(Self)
            .map_err(|_| CursorError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CursorKey {
        CursorKey::from_bytes([7; 32])
    }

    fn cursor() -> Cursor {
        Cursor {
            at: Timestamp::from_millis(1_700_000_000_123),
            id: 42,
        }
    }

    #[test]
    fn a_sealed_cursor_opens_for_its_own_list() {
        let text = cursor().seal(&key(), "logs:alice");
        assert_eq!(Cursor::open(&text, &key(), "logs:alice"), Ok(cursor()));
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }

    #[test]
    fn sealed_cursors_match_fixed_vectors() {
        // Cursors already handed out must keep opening after a dependency
        // upgrade; the values come from Python's hmac.
        assert_eq!(
            cursor().seal(&key(), "logs:alice"),
            "AAABi8_laHsAAAAAAAAAKkCeNh7av3pqRyZD445dONY"
        );
        let derived = CursorKey::derive(&RefreshSecret::from_bytes([1; 32]));
        assert_eq!(
            cursor().seal(&derived, "logs:alice"),
            "AAABi8_laHsAAAAAAAAAKuxu4_6I-DtHq7M1yywWX4Q"
        );
    }

    #[test]
    fn a_cursor_of_another_list_or_key_does_not_open() {
        let text = cursor().seal(&key(), "logs:alice");
        assert_eq!(Cursor::open(&text, &key(), "logs:bob"), Err(CursorError));
        let other = CursorKey::from_bytes([8; 32]);
        assert_eq!(Cursor::open(&text, &other, "logs:alice"), Err(CursorError));
    }

    #[test]
    fn forged_or_garbled_cursors_do_not_open() {
        let text = cursor().seal(&key(), "s");
        let mut tampered = text.clone().into_bytes();
        tampered[3] = if tampered[3] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        for bad in [
            "",
            "abc",
            "!!!!",
            &tampered,
            &"A".repeat(43),
            &"A".repeat(500),
        ] {
            assert_eq!(Cursor::open(bad, &key(), "s"), Err(CursorError), "{bad}");
        }
    }

    #[test]
    fn a_name_cursor_opens_only_for_its_own_list() {
        let name = NameCursor("alice.b-c_9".to_owned());
        let text = name.seal(&key(), "users:al");
        assert_eq!(NameCursor::open(&text, &key(), "users:al"), Ok(name));
        assert_eq!(NameCursor::open(&text, &key(), "users:"), Err(CursorError));
        let longest = NameCursor("x".repeat(64));
        let text = longest.seal(&key(), "s");
        assert_eq!(NameCursor::open(&text, &key(), "s"), Ok(longest));
        for bad in ["", "abc", &"A".repeat(500)] {
            assert_eq!(NameCursor::open(bad, &key(), "s"), Err(CursorError));
        }
    }

    #[test]
    fn the_derived_key_depends_on_the_secret() {
        let a = CursorKey::derive(&RefreshSecret::from_bytes([1; 32]));
        let b = CursorKey::derive(&RefreshSecret::from_bytes([2; 32]));
        let text = cursor().seal(&a, "s");
        assert!(Cursor::open(&text, &b, "s").is_err());
        assert_eq!(Cursor::open(&text, &a, "s"), Ok(cursor()));
    }
}
