//! argon2id password hashing behind [`application::ports::PasswordHasher`].
//!
//! Parameters follow the OWASP recommendation for argon2id: 19 MiB of
//! memory, two passes, one lane. Every hash or verification costs about that
//! much memory and CPU, so [`Argon2Hasher`] lets at most `max_concurrent` of
//! them run at once and queues the rest ([`semaphore`]): a burst of logins
//! then waits instead of exhausting memory.

mod semaphore;

use std::fmt;

use application::ports::{CryptoError, PasswordHasher};
use argon2::password_hash::{self, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use domain::{Password, PasswordHash};
use rand::rngs::OsRng;

use crate::semaphore::Semaphore;

/// Memory cost in KiB (OWASP: 19 MiB).
pub const M_COST_KIB: u32 = 19_456;
/// Number of passes.
pub const T_COST: u32 = 2;
/// Degree of parallelism (lanes).
pub const P_COST: u32 = 1;

/// Hashes and verifies passwords with argon2id, bounded in concurrency.
///
/// Callers are blocking threads (never async workers): a call may wait for a
/// free slot and then computes for tens of milliseconds.
pub struct Argon2Hasher {
    argon2: Argon2<'static>,
    /// A PHC hash of a random string made with the same parameters, so that
    /// an unknown user costs what a wrong password costs. `None` only if
    /// making it failed; see [`Argon2Hasher::verify`].
    dummy: Option<String>,
    slots: Semaphore,
}

impl Argon2Hasher {
    /// A hasher that runs at most `max_concurrent` computations at once
    /// (values below 1 count as 1). Computes the dummy hash, which takes as
    /// long as one hash.
    pub fn new(max_concurrent: usize) -> Self {
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, owasp_params());
        let dummy = match hash_with(&argon2, random_dummy_password().as_bytes()) {
            Ok(phc) => Some(phc),
            Err(e) => {
                // Not fatal: `verify(_, None)` then hashes the presented
                // password instead, which costs the same.
                tracing::error!(error = %e, "could not compute the dummy password hash");
                None
            }
        };
        Self {
            argon2,
            dummy,
            slots: Semaphore::new(max_concurrent.max(1)),
        }
    }

    /// How many callers are waiting for a slot.
    pub fn queue_depth(&self) -> usize {
        self.slots.waiting()
    }

    /// How many hash or verify computations are running now.
    pub fn in_flight(&self) -> usize {
        self.slots.in_flight()
    }

    /// The configured bound on concurrent computations.
    pub fn max_concurrent(&self) -> usize {
        self.slots.capacity()
    }

    fn verify_phc(&self, password: &str, phc: &str) -> Result<bool, CryptoError> {
        let parsed = password_hash::PasswordHash::new(phc)
            .map_err(|_| CryptoError("stored password hash is not a PHC string".to_owned()))?;
        if parsed.salt.is_none() || parsed.hash.is_none() {
            return Err(CryptoError(
                "stored password hash lacks salt or output".to_owned(),
            ));
        }
        // The stored string's own algorithm and parameters are used, so
        // hashes made with older parameters still verify. The output
        // comparison is constant-time (`password_hash::Output`'s `Eq`).
        match self.argon2.verify_password(password.as_bytes(), &parsed) {
            Ok(()) => Ok(true),
            Err(password_hash::Error::Password) => Ok(false),
            Err(e) => Err(CryptoError(format!(
                "cannot verify against stored hash: {e}"
            ))),
        }
    }
}

impl PasswordHasher for Argon2Hasher {
    fn hash(&self, password: &Password) -> Result<PasswordHash, CryptoError> {
        let _slot = self.slots.acquire();
        hash_with(&self.argon2, password.expose().as_bytes())
            .map(PasswordHash::new)
            .map_err(|e| CryptoError(format!("argon2 hashing failed: {e}")))
    }

    fn verify(
        &self,
        password: &Password,
        hash: Option<&PasswordHash>,
    ) -> Result<bool, CryptoError> {
        let _slot = self.slots.acquire();
        match (hash, &self.dummy) {
            (Some(stored), _) => self.verify_phc(password.expose(), stored.as_str()),
            (None, Some(dummy)) => {
                // Same work as a real check; the answer is "no" whatever it says.
                let _ = self.verify_phc(password.expose(), dummy);
                Ok(false)
            }
            (None, None) => {
                let _ = hash_with(&self.argon2, password.expose().as_bytes());
                Ok(false)
            }
        }
    }
}

impl fmt::Debug for Argon2Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Argon2Hasher")
            .field("algorithm", &"argon2id")
            .field("m_cost_kib", &M_COST_KIB)
            .field("t_cost", &T_COST)
            .field("p_cost", &P_COST)
            .field("max_concurrent", &self.slots.capacity())
            .field("in_flight", &self.slots.in_flight())
            .field("queue_depth", &self.slots.waiting())
            .finish_non_exhaustive()
    }
}

fn owasp_params() -> Params {
    // argon2 0.5's defaults are exactly the OWASP values; say so in a test
    // rather than trusting it silently.
    Params::DEFAULT
}

fn hash_with(argon2: &Argon2<'_>, password: &[u8]) -> Result<String, password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(argon2.hash_password(password, &salt)?.to_string())
}

fn random_dummy_password() -> String {
    // Its value does not matter; random so no password can match it.
    SaltString::generate(&mut OsRng).as_str().to_owned()
}

#[cfg(test)]
mod tests;
