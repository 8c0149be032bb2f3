//! The operating system's clock and CSPRNG behind the application's ports.

use std::time::{SystemTime, UNIX_EPOCH};

use rand::rand_core::UnwrapErr;
use rand::rngs::SysRng;
use rand::Rng as _;

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
        UnwrapErr(SysRng).fill_bytes(&mut b);
        b
    }

    fn id_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        UnwrapErr(SysRng).fill_bytes(&mut b);
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_os_csprng_gives_fresh_bytes_each_time() {
        let (a, b) = (OsRandom.token_bytes(), OsRandom.token_bytes());
        assert_ne!(a, b);
        assert_ne!(a, [0; 32]);
        assert_ne!(OsRandom.id_bytes(), OsRandom.id_bytes());
    }
}
