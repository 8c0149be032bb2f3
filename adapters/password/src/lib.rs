//! argon2id password hashing behind [`application::ports::PasswordHasher`].
//!
//! Parameters follow the OWASP recommendation for argon2id: 19 MiB of
//! memory, two passes, one lane. Every hash or verification costs about that
//! much memory and CPU, so [`Argon2Hasher`] owns a fixed number of
//! workspaces (one per core in the server), allocated once and reused by
//! every computation ([`workspace`]): at most that many run at once, and
//! memory does not grow with the number of callers. How many callers may
//! *wait* for one is the HTTP adapter's business (its password queue); here
//! a caller that finds none free blocks until one is returned.

mod workspace;

use std::fmt;

use application::ports::{CryptoError, PasswordHasher};
use argon2::password_hash;
use argon2::password_hash::phc::{self, Output, ParamsString, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use domain::{Password, PasswordHash};

use crate::workspace::Workspaces;

/// Memory cost in KiB (OWASP: 19 MiB).
pub const M_COST_KIB: u32 = 19_456;
/// Number of passes.
pub const T_COST: u32 = 2;
/// Degree of parallelism (lanes).
pub const P_COST: u32 = 1;

/// How much work one hash or verification costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashCost {
    /// OWASP's argon2id parameters ([`M_COST_KIB`], [`T_COST`], [`P_COST`]):
    /// what every server and command uses.
    #[default]
    Owasp,
    /// argon2's minimum (8 KiB, one pass, one lane): for test suites that
    /// register and log in thousands of times. No setting selects it; only
    /// code that builds a server for its tests does. Hashes stored with it
    /// still verify under [`HashCost::Owasp`] (verification reads the
    /// parameters from the stored hash), and the other way round.
    Minimal,
}

impl HashCost {
    fn params(self) -> Params {
        match self {
            Self::Owasp => owasp_params(),
            Self::Minimal => minimal_params(),
        }
    }
}

/// Hashes and verifies passwords with argon2id, in a fixed set of reused
/// workspaces.
///
/// Callers are blocking threads (never async workers): a call may wait for a
/// free workspace and then computes for tens of milliseconds.
pub struct Argon2Hasher {
    argon2: Argon2<'static>,
    /// A PHC hash of a random string made with the same parameters, so that
    /// an unknown user costs what a wrong password costs. `None` only if
    /// making it failed; see [`Argon2Hasher::verify`].
    dummy: Option<String>,
    workspaces: Workspaces,
}

impl Argon2Hasher {
    /// A hasher with `workers` workspaces (values below 1 count as 1), so at
    /// most that many computations at once. Allocates them (19 MiB each)
    /// and computes the dummy hash, which takes as long as one hash.
    pub fn new(workers: usize) -> Self {
        Self::with_cost(workers, HashCost::Owasp)
    }

    /// [`Argon2Hasher::new`] at a given cost. The dummy hash for unknown
    /// users is made at the same cost, so they still cost what a wrong
    /// password costs.
    pub fn with_cost(workers: usize, cost: HashCost) -> Self {
        Self::with_params(workers, cost.params())
    }

    /// [`Argon2Hasher::new`] with other parameters (tests: cheap ones).
    fn with_params(workers: usize, params: Params) -> Self {
        let workspaces = Workspaces::new(workers.max(1), params.block_count());
        let mut hasher = Self {
            argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
            dummy: None,
            workspaces,
        };
        hasher.dummy = match hasher.hash_phc(random_dummy_password().as_bytes()) {
            Ok(phc) => Some(phc),
            Err(e) => {
                // Not fatal: `verify(_, None)` then hashes the presented
                // password instead, which costs the same.
                tracing::error!(error = %e, "could not compute the dummy password hash");
                None
            }
        };
        hasher
    }

    /// How many callers are waiting for a workspace.
    pub fn queue_depth(&self) -> usize {
        self.workspaces.waiting()
    }

    /// How many hash or verify computations are running now.
    pub fn in_flight(&self) -> usize {
        self.workspaces.in_use()
    }

    /// The bound on concurrent computations (the number of workspaces).
    pub fn max_concurrent(&self) -> usize {
        self.workspaces.capacity()
    }

    /// A PHC string of `password` with the current parameters and a fresh
    /// salt.
    fn hash_phc(&self, password: &[u8]) -> Result<String, password_hash::Error> {
        let salt = Salt::generate();
        let output_len = self
            .argon2
            .params()
            .output_len()
            .unwrap_or(Params::DEFAULT_OUTPUT_LEN);
        let output = {
            let mut memory = self.workspaces.borrow();
            compute(&self.argon2, password, &salt, output_len, &mut memory)?
        };
        let phc = phc::PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(self.argon2.params())?,
            salt: Some(salt),
            hash: Some(output),
        };
        Ok(phc.to_string())
    }

    fn verify_phc(&self, password: &str, phc: &str) -> Result<bool, CryptoError> {
        let unreadable = |what: &str| CryptoError(format!("stored password hash: {what}"));
        let parsed = phc::PasswordHash::new(phc).map_err(|_| unreadable("not a PHC string"))?;
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            return Err(unreadable("lacks salt or output"));
        };
        // The stored string's own algorithm and parameters are used, so
        // hashes made with older parameters still verify.
        let algorithm =
            Algorithm::try_from(parsed.algorithm.as_str()).map_err(|_| unreadable("not argon2"))?;
        let version = parsed
            .version
            .map_or(Ok(Version::default()), Version::try_from)
            .map_err(|_| unreadable("unknown argon2 version"))?;
        let params = Params::try_from(&parsed).map_err(|_| unreadable("bad parameters"))?;
        let argon2 = Argon2::new(algorithm, version, params);
        let cannot = |e: password_hash::Error| {
            CryptoError(format!("cannot verify against stored hash: {e}"))
        };
        let computed = {
            let mut memory = self.workspaces.borrow();
            if memory.len() >= argon2.params().block_count() {
                compute(
                    &argon2,
                    password.as_bytes(),
                    salt,
                    expected.len(),
                    &mut memory,
                )
            } else {
                // A hash stored with more memory than today's parameters
                // (none are made so): its own allocation, once.
                let mut more = vec![Block::new(); argon2.params().block_count()];
                compute(
                    &argon2,
                    password.as_bytes(),
                    salt,
                    expected.len(),
                    &mut more,
                )
            }
            .map_err(cannot)?
        };
        // `Output`'s equality is constant-time.
        Ok(computed == *expected)
    }
}

impl PasswordHasher for Argon2Hasher {
    fn hash(&self, password: &Password) -> Result<PasswordHash, CryptoError> {
        self.hash_phc(password.expose().as_bytes())
            .map(PasswordHash::new)
            .map_err(|e| CryptoError(format!("argon2 hashing failed: {e}")))
    }

    fn verify(
        &self,
        password: &Password,
        hash: Option<&PasswordHash>,
    ) -> Result<bool, CryptoError> {
        match (hash, &self.dummy) {
            (Some(stored), _) => self.verify_phc(password.expose(), stored.as_str()),
            (None, Some(dummy)) => {
                // Same work as a real check; the answer is "no" whatever it says.
                let _ = self.verify_phc(password.expose(), dummy);
                Ok(false)
            }
            (None, None) => {
                let _ = self.hash_phc(password.expose().as_bytes());
                Ok(false)
            }
        }
    }
}

impl fmt::Debug for Argon2Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let params = self.argon2.params();
        f.debug_struct("Argon2Hasher")
            .field("algorithm", &"argon2id")
            .field("m_cost_kib", &params.m_cost())
            .field("t_cost", &params.t_cost())
            .field("p_cost", &params.p_cost())
            .field("workers", &self.workspaces.capacity())
            .field("in_flight", &self.workspaces.in_use())
            .field("queue_depth", &self.workspaces.waiting())
            .finish_non_exhaustive()
    }
}

fn owasp_params() -> Params {
    // argon2's defaults (0.5 and 0.6) are exactly the OWASP values; say so in a test
    // rather than trusting it silently.
    Params::DEFAULT
}

fn minimal_params() -> Params {
    Params::new(
        Params::MIN_M_COST,
        Params::MIN_T_COST,
        Params::MIN_P_COST,
        None,
    )
    // The minimum values are valid by definition; never reached.
    .unwrap_or(Params::DEFAULT)
}

/// Argon2 of `password` with `salt` into an output of `len` bytes, in the
/// given memory blocks (at least `argon2.params().block_count()` of them).
fn compute(
    argon2: &Argon2<'_>,
    password: &[u8],
    salt: &Salt,
    len: usize,
    memory: &mut [Block],
) -> Result<Output, password_hash::Error> {
    let mut out = [0u8; Output::MAX_LENGTH];
    let out = out.get_mut(..len).ok_or(password_hash::Error::OutputSize)?;
    argon2.hash_password_into_with_memory(password, salt, out, memory)?;
    Ok(Output::new(out)?)
}

fn random_dummy_password() -> String {
    // Its value does not matter; random so no password can match it.
    SaltString::generate().to_string()
}

#[cfg(test)]
mod tests;
