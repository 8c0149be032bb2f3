//! [`DpopReplayStore`] over the `dpop_proofs` table: the proof ids already
//! accepted, shared by every instance on the database.

use application::ports::{CheckedProof, DpopReplayStore, StoreError};
use domain::{Jkt, Timestamp};
use sha2::{Digest, Sha256};

use crate::connection::{AnyConnection, Database};
use crate::error::{store, DbError};
use crate::fixed::{Bind, Fixed, RecordProof};
use crate::transaction::write_transaction;

/// The row key of a proof id: hex SHA-256 of the key's thumbprint and the
/// `jti`, so that ids are scoped to their key and of fixed length.
pub(crate) fn proof_key(jkt: &Jkt, jti: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(jkt.as_str().as_bytes());
    hash.update(b".");
    hash.update(jti.as_bytes());
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl DpopReplayStore for Database {
    fn first_use(
        &self,
        jkt: &Jkt,
        jti: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.record_proof(&proof_key(jkt, jti), until, now)
            .map_err(store("record DPoP proof id"))
    }
}

impl Database {
    /// [`record_proof_id`] in a transaction of its own.
    fn record_proof(&self, key: &str, until: Timestamp, now: Timestamp) -> Result<bool, DbError> {
        let mut conn = self.conn()?;
        write_transaction(&mut conn, self.write_lock(), |conn| {
            record_proof_id(conn, key, until, now)
        })
    }
}

/// Records the proof id `key` until `until`, in the caller's transaction:
/// one statement that inserts the key, or takes over a row whose time has
/// passed; a row still in force is left alone and nothing is affected.
/// `true` when the id was new. A concurrent transaction recording the same
/// id waits for this one (the primary key), so of the two at most one
/// commits it as new.
pub(crate) fn record_proof_id(
    conn: &mut AnyConnection,
    key: &str,
    until: Timestamp,
    now: Timestamp,
) -> Result<bool, DbError> {
    // A prepared statement (`Fixed`): a bound refresh runs it in its
    // rotation's transaction.
    let affected = Fixed::<RecordProof>::new(&[
        Bind::Text(key),
        Bind::BigInt(until.as_millis()),
        Bind::BigInt(now.as_millis()),
    ])
    .execute(conn)?;
    Ok(affected == 1)
}

/// The key of `proof` if its id was new, recording it in the caller's
/// transaction: what a refresh or a logout of a bound session hands its
/// plan. A proof whose id was seen before is no proof.
pub(crate) fn spend_proof<'a>(
    conn: &mut AnyConnection,
    proof: &'a CheckedProof,
    now: Timestamp,
) -> Result<Option<&'a Jkt>, DbError> {
    let key = proof_key(&proof.key, &proof.jti);
    Ok(record_proof_id(conn, &key, proof.remember_until, now)?.then_some(&proof.key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proof_keys_match_a_fixed_vector() {
        // Rows already stored must keep their keys after a dependency
        // upgrade; the value comes from Python's hashlib.
        let jkt = Jkt::parse("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I").unwrap();
        assert_eq!(
            proof_key(&jkt, "e1j3V_bKic8-LAEB"),
            "5db040390911fa644040ba9cd588e874c5dca0db5b1403a301ce097286be3d45"
        );
    }
}
