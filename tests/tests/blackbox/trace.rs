//! The labelled trace (`integration_tests::trace`): honest clients and
//! thieves, with and without DPoP, against the real server on SQLite and
//! PostgreSQL; every target of `docs/risk-scoring.md` must hold.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use integration_tests::*;

on_both_backends!(the_targets_of_the_labelled_trace_hold);

async fn the_targets_of_the_labelled_trace_hold(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, trace::configure).await else {
        return;
    };
    let rows = trace::run(&app, 11, 1).await;
    let report = trace::report(&rows);
    for target in trace::targets(&rows) {
        assert!(target.met, "{}: {}\n\n{report}", target.name, target.detail);
    }
}
