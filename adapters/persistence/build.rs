//! Rebuilds the crate when a migration changes: they are embedded at compile
//! time by `diesel_migrations::embed_migrations!`.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations/sqlite");
    println!("cargo:rerun-if-changed=../../migrations/postgres");
}
