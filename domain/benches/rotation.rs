//! The rotation decision is on every refresh; it must cost next to nothing.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use domain::{
    plan, Generation, LastUse, Lifetimes, PresentedToken, RefreshSecret, RefreshToken,
    RotationPolicy, SessionState, Sighting, Timestamp,
};

fn rotation(c: &mut Criterion) {
    let policy = RotationPolicy::new(
        &Lifetimes::default(),
        RotationPolicy::DEFAULT_RETRY_WINDOW,
        Default::default(),
        Default::default(),
    );
    let ua = "Mozilla/5.0 Firefox/130.0";
    let state = SessionState {
        generation: Generation::new(7),
        ended: None,
        rotated_at: Timestamp::from_millis(1_000),
        expires_at: Timestamp::from_millis(1_000).plus(Duration::from_secs(86_400)),
        rotated_by: Some(ua.to_owned()),
        rotated_from: Some("198.51.100.7".to_owned()),
        last_use: LastUse {
            at: Timestamp::from_millis(1_000),
            ip: Some("198.51.100.7".to_owned()),
            user_agent: Some(ua.to_owned()),
        },
        bound_to: None,
    };
    let now = Timestamp::from_millis(5_000);
    let client = Sighting {
        at: now,
        ip: Some("198.51.100.7"),
        user_agent: Some(ua),
    };
    for (name, generation) in [("plan/rotate", 7), ("plan/grace_replay", 6)] {
        c.bench_function(name, |b| {
            b.iter(|| {
                plan(
                    black_box(&state),
                    black_box(PresentedToken {
                        generation: Generation::new(generation),
                        proof_key: None,
                    }),
                    black_box(&client),
                    &policy,
                    now,
                )
            })
        });
    }
    let secret = RefreshSecret::from_bytes([3; 32]);
    let token = RefreshToken::from_random_bytes([9; 32]);
    c.bench_function("token/successor_and_digest", |b| {
        b.iter(|| black_box(&token).successor(&secret).digest())
    });
}

criterion_group!(benches, rotation);
criterion_main!(benches);
