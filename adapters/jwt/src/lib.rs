//! EdDSA (Ed25519) access tokens and their JWKS, behind
//! [`application::ports::AccessTokenSigner`].
//!
//! - [`KeyStore`] owns the keys directory (`TOKENWARDEN_KEYS_DIR`): one
//!   PKCS#8 PEM file per key (`<kid>.pem`, mode 0600), `keys.json` naming the
//!   current key and when older ones were retired, and `refresh.secret`, the
//!   32-byte secret successor refresh tokens are derived with. Several server
//!   instances may share the directory; see [`KeyStore::rotate`].
//! - [`JwtSigner`] signs RFC 9068 access tokens (`typ: at+jwt`) with the
//!   current key and verifies them against every published key, pinning the
//!   algorithm and checking `exp`/`nbf` against the caller's `now`.
//!
//! - [`DpopReader`] reads DPoP proofs (RFC 9449): ES256 or EdDSA, signed
//!   by the public key in their own header.
//!
//! None ever logs a key, a secret or a token.

mod dpop;
mod error;
mod files;
mod keystore;
mod signer;

pub use dpop::{DpopReader, MAX_PROOF_LEN};
pub use error::KeyError;
pub use keystore::{KeyInfo, KeyState, KeyStore, KEYS_FILE, RELOAD_INTERVAL, SECRET_FILE};
pub use signer::{JwtConfig, JwtSigner, ACCESS_TOKEN_TYP, MAX_TOKEN_LEN};
