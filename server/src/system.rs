//! The operating system's clock and CSPRNG behind the application's ports.

use std::time::{SystemTime, UNIX_EPOCH};

use rand::rngs::OsRng;
use rand::RngCore;

use application::ports::{Clock, RandomSource};
use domain::Timestamp;

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Timestamp::from_millis(ms)
    }
}

pub struct OsRandom;

impl RandomSource for OsRandom {
    fn token_bytes(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        OsRng.fill_bytes(&mut b);
        b
    }

    fn id_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        OsRng.fill_bytes(&mut b);
        b
    }
}
