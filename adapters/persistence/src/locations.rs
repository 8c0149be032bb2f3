//! Where the successors this process issued are, kept in memory so that
//! their refresh needs no read before its transaction.
//!
//! A refresh first locates its token (session, user, generation, whether
//! the session is bound to a DPoP key) with a plain read, then rotates in a
//! transaction that locks and reads the session again. That read was 12 %
//! of the server's CPU in the SQLite refresh profile (a pooled connection
//! whose page cache the writer's last commit had emptied) and two of the
//! round trips of a PostgreSQL refresh (the pool's check-out test and the
//! query). What it reads never changes once committed, and a rotation
//! knows it for its successor before anyone can present that: so a
//! rotation that committed notes its successor's location here, and the
//! successor's refresh finds it without a query.
//!
//! Correctness does not depend on this map: the rotation's transaction
//! reads the session under its lock whatever the location said, and a
//! token whose rows are gone is found unknown there
//! (`RotateOutcome::UnknownToken`, audited as such) as it would have been
//! by the read. A location is noted only after its rotation committed.
//! When this process deletes tokens (a cleanup pass, a deleted user) it
//! forgets every location, so that its `locate` answers `None` for them at
//! once; deletions by another instance are found by the rotation.
//!
//! On PostgreSQL the entry also keeps the session row as that rotation
//! committed it: the successor's rotation plans from it and writes only if
//! the row is still exactly that ([`crate::fixed::RotateGuarded`]), one
//! statement without a lock or a read before it. A row that changed
//! meanwhile (another instance, a revocation) fails the guard, and the
//! rotation runs as without the map.
//!
//! Bounded: two generations of at most [`GENERATION`] entries each; when
//! the newer is full it becomes the older and the older is dropped. A
//! successor is usually refreshed within an access token's lifetime, long
//! before [`GENERATION`] newer successors have been issued; one that is
//! not is read from the database as before.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use application::ports::TokenLocation;
use domain::TokenDigest;

use crate::rows::SessionRow;

/// Entries per generation: at most twice as many are kept (about 100 bytes
/// each, and on PostgreSQL a session row of a few hundred).
pub(crate) const GENERATION: usize = 16_384;

#[derive(Debug, Default)]
pub(crate) struct Locations {
    generations: Mutex<Generations>,
    /// Rotations written from a noted session row (for tests).
    guarded: AtomicU64,
}

#[derive(Debug, Default)]
struct Generations {
    newer: HashMap<[u8; 32], Noted>,
    older: HashMap<[u8; 32], Noted>,
}

#[derive(Debug, Clone)]
struct Noted {
    location: TokenLocation,
    session: Option<Arc<SessionRow>>,
}

impl Locations {
    /// Where `digest` is, if a rotation of this process issued it lately.
    pub(crate) fn get(&self, digest: &TokenDigest) -> Option<TokenLocation> {
        self.noted(digest).map(|noted| noted.location)
    }

    /// The session row as the rotation that issued `digest` committed it,
    /// if noted (PostgreSQL).
    pub(crate) fn session(&self, digest: &TokenDigest) -> Option<Arc<SessionRow>> {
        self.noted(digest)?.session
    }

    fn noted(&self, digest: &TokenDigest) -> Option<Noted> {
        let generations = self
            .generations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let key = digest.as_bytes();
        generations
            .newer
            .get(key)
            .or_else(|| generations.older.get(key))
            .cloned()
    }

    /// Counts a rotation written from a noted session row.
    pub(crate) fn count_guarded(&self) {
        self.guarded.fetch_add(1, Ordering::Relaxed);
    }

    /// How many rotations were written from a noted session row.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn guarded(&self) -> u64 {
        self.guarded.load(Ordering::Relaxed)
    }

    /// Forgets every location: after tokens were deleted.
    pub(crate) fn forget_all(&self) {
        *self
            .generations
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Generations::default();
    }

    /// Notes where `digest` is, and the session row that its rotation
    /// wrote (if kept): call only once the token's insert has committed.
    pub(crate) fn note(
        &self,
        digest: &TokenDigest,
        location: TokenLocation,
        session: Option<SessionRow>,
    ) {
        let noted = Noted {
            location,
            session: session.map(Arc::new),
        };
        let mut generations = self
            .generations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if generations.newer.len() >= GENERATION {
            generations.older = std::mem::take(&mut generations.newer);
        }
        generations.newer.insert(*digest.as_bytes(), noted);
    }
}

#[cfg(test)]
mod tests {
    use domain::{Generation, SessionId, UserId};

    use super::*;

    fn location(generation: u32) -> TokenLocation {
        TokenLocation {
            session: SessionId::from_random_bytes([1; 16]),
            user: UserId::from_random_bytes([2; 16]),
            generation: Generation::new(generation),
            bound: false,
        }
    }

    fn digest(n: usize) -> TokenDigest {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&(n as u64).to_le_bytes());
        TokenDigest::from_bytes(bytes)
    }

    #[test]
    fn a_noted_location_is_found_and_others_are_not() {
        let locations = Locations::default();
        locations.note(&digest(1), location(4), None);
        assert_eq!(locations.get(&digest(1)), Some(location(4)));
        assert_eq!(locations.get(&digest(2)), None);
        locations.forget_all();
        assert_eq!(locations.get(&digest(1)), None);
    }

    #[test]
    fn it_keeps_at_most_two_generations() {
        let locations = Locations::default();
        for n in 0..3 * GENERATION {
            locations.note(&digest(n), location(u32::try_from(n).unwrap()), None);
        }
        // The newest two generations are kept, the oldest is gone.
        assert_eq!(locations.get(&digest(0)), None);
        assert_eq!(locations.get(&digest(GENERATION - 1)), None);
        assert!(locations.get(&digest(GENERATION)).is_some());
        assert!(locations.get(&digest(3 * GENERATION - 1)).is_some());
        let generations = locations.generations.lock().unwrap();
        assert!(generations.newer.len() + generations.older.len() <= 2 * GENERATION);
    }
}
