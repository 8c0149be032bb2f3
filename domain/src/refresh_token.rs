//! Opaque refresh tokens, their at-rest digests and successor derivation.
//!
//! A token is `twr_` followed by 32 bytes in unpadded base64url. The server
//! only ever stores [`TokenDigest`]s (SHA-256 of the token text).
//!
//! Successors are *derived*: `successor = HMAC-SHA256(secret, token)`. Only
//! the server knows `secret`, so holding a token does not reveal its
//! successor, yet the server can hand the same successor again to a grace
//! replay without having stored any token in clear.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const PREFIX: &str = "twr_";
const ENCODED_LEN: usize = 43; // 32 bytes, base64url without padding

/// A refresh token in clear. `Debug` is redacted and there is no `Display`.
#[derive(Clone)]
pub struct RefreshToken(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed refresh token")]
pub struct RefreshTokenError;

impl RefreshToken {
    /// A token made from 32 random bytes supplied by the caller (a CSPRNG).
    pub fn from_random_bytes(bytes: [u8; 32]) -> Self {
        Self(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Checks the shape of a presented token before anything looks it up.
    pub fn parse(raw: &str) -> Result<Self, RefreshTokenError> {
        let body = raw.strip_prefix(PREFIX).ok_or(RefreshTokenError)?;
        if body.len() != ENCODED_LEN {
            return Err(RefreshTokenError);
        }
        let decoded = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| RefreshTokenError)?;
        if decoded.len() != 32 {
            return Err(RefreshTokenError);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The token text, to put in a cookie or response body.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn digest(&self) -> TokenDigest {
        TokenDigest(Sha256::digest(self.0.as_bytes()).into())
    }

    /// The successor this token rotates into, under the server's secret.
    pub fn successor(&self, secret: &RefreshSecret) -> RefreshToken {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&secret.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"tokenwarden/refresh-successor/v1:");
        mac.update(self.0.as_bytes());
        Self::from_random_bytes(mac.finalize().into_bytes().into())
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken([REDACTED])")
    }
}

impl PartialEq for RefreshToken {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for RefreshToken {}

/// SHA-256 of a refresh token: what is stored and looked up.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex, the storage form.
    pub fn to_hex(&self) -> String {
        // Several per refresh: one allocation, no formatting machinery (a
        // `format!` per byte was 8 % of a refresh's instructions).
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = String::with_capacity(2 * self.0.len());
        for b in self.0 {
            hex.push(char::from(DIGITS[usize::from(b >> 4)]));
            hex.push(char::from(DIGITS[usize::from(b & 0x0f)]));
        }
        hex
    }

    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, chunk) in hex.as_bytes().chunks(2).enumerate() {
            let s = std::str::from_utf8(chunk).ok()?;
            out[i] = u8::from_str_radix(s, 16).ok()?;
        }
        Some(Self(out))
    }

    /// A short, non-reversible label for logs and audit rows: the first 8
    /// hex digits of SHA-256 over the digest (so it is not a prefix of the
    /// stored lookup key either).
    pub fn fingerprint(&self) -> String {
        let h = Sha256::digest(self.0);
        h[..4].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenDigest({})", self.fingerprint())
    }
}

/// The server-side key that successors are derived with.
#[derive(Clone)]
pub struct RefreshSecret([u8; 32]);

impl RefreshSecret {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// For deriving other keys from it (see [`crate::cursor::CursorKey`]).
    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for RefreshSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshSecret([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(seed: u8) -> RefreshToken {
        RefreshToken::from_random_bytes([seed; 32])
    }

    #[test]
    fn a_generated_token_parses_back() {
        let t = token(1);
        assert_eq!(t.expose().len(), 47);
        assert_eq!(RefreshToken::parse(t.expose()).unwrap(), t);
    }

    #[test]
    fn malformed_tokens_are_rejected_before_any_lookup() {
        for bad in [
            "",
            "twr_",
            "abc",
            "twr_!!!!",
            &"twr_".repeat(20),
            "TWR_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert_eq!(RefreshToken::parse(bad), Err(RefreshTokenError), "{bad}");
        }
    }

    #[test]
    fn successors_are_deterministic_and_depend_on_the_secret() {
        let a = RefreshSecret::from_bytes([1; 32]);
        let b = RefreshSecret::from_bytes([2; 32]);
        let t = token(3);
        assert_eq!(t.successor(&a), t.successor(&a));
        assert_ne!(t.successor(&a), t.successor(&b));
        assert_ne!(t.successor(&a), t);
        assert!(RefreshToken::parse(t.successor(&a).expose()).is_ok());
    }

    #[test]
    fn digests_fingerprints_and_successors_match_fixed_vectors() {
        // Stored digests and issued successors must not change with a
        // dependency upgrade; the values come from Python's hashlib/hmac.
        let t = token(3);
        assert_eq!(
            t.expose(),
            "twr_AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM"
        );
        assert_eq!(
            t.digest().to_hex(),
            "adcd6c29637abfa9472de4c2b7c493dfa2ad842fe3c41a674c22fbefd304ced9"
        );
        assert_eq!(t.digest().fingerprint(), "3d0fc2a5");
        assert_eq!(
            t.successor(&RefreshSecret::from_bytes([1; 32])).expose(),
            "twr__M7xa3iQf9VxuleTQZlrCNmeJxFYGu5xKUmNrM89xSQ"
        );
    }

    #[test]
    fn hex_is_two_lower_case_digits_per_byte_in_order() {
        let hex = "00ff10a9b8c7d6e5f4031221304f5e6d7c8b9aabbccddeeff0123456789abcde";
        let digest = TokenDigest::from_hex(hex).unwrap();
        assert_eq!(digest.to_hex(), hex);
        assert_eq!(
            TokenDigest::from_hex(&hex.to_uppercase()).unwrap().to_hex(),
            hex
        );
    }

    #[test]
    fn digests_round_trip_through_hex_and_hide_the_token() {
        let t = token(4);
        let d = t.digest();
        assert_eq!(TokenDigest::from_hex(&d.to_hex()), Some(d));
        assert!(!d.to_hex().contains(t.expose()));
        assert_eq!(d.fingerprint().len(), 8);
        assert!(!d.to_hex().starts_with(&d.fingerprint()));
        assert!(!format!("{t:?}").contains(t.expose()));
    }
}
