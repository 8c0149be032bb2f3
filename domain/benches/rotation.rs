//! The rotation decision is on every refresh; it must cost next to nothing.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use domain::{
    decide, Generation, Lifetimes, PresentedToken, RefreshSecret, RefreshToken, SessionState,
    Timestamp,
};

fn rotation(c: &mut Criterion) {
    let lifetimes = Lifetimes::default();
    let state = SessionState {
        generation: Generation::new(7),
        revoked: false,
        rotated_at: Timestamp::from_millis(1_000),
        expires_at: Timestamp::from_millis(1_000).plus(Duration::from_secs(86_400)),
        rotated_by: Some("Mozilla/5.0 Firefox/130.0".to_owned()),
    };
    let now = Timestamp::from_millis(5_000);
    c.bench_function("decide/rotate", |b| {
        b.iter(|| {
            decide(
                black_box(&state),
                black_box(PresentedToken {
                    generation: Generation::new(7),
                }),
                black_box(Some("Mozilla/5.0 Firefox/130.0")),
                &lifetimes,
                now,
            )
        })
    });
    c.bench_function("decide/grace_replay", |b| {
        b.iter(|| {
            decide(
                black_box(&state),
                black_box(PresentedToken {
                    generation: Generation::new(6),
                }),
                black_box(Some("Mozilla/5.0 Firefox/130.0")),
                &lifetimes,
                now,
            )
        })
    });
    let secret = RefreshSecret::from_bytes([3; 32]);
    let token = RefreshToken::from_random_bytes([9; 32]);
    c.bench_function("token/successor_and_digest", |b| {
        b.iter(|| black_box(&token).successor(&secret).digest())
    });
}

criterion_group!(benches, rotation);
criterion_main!(benches);
