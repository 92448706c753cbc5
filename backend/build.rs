//! Rebuilds the backend when a migration changes: `sqlx::migrate!` embeds the files, and on stable
//! Rust cargo does not see that dependency by itself (sqlx documents this build script).

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
