//! The crate layout holds: the engine crate depends on no async runtime, no HTTP stack and no
//! table renderer (`cargo tree` of `loomiere-engine`, normal dependencies, as a build sees
//! them), and neither on the HTTP nor the bench crate.

use std::process::Command;

/// Every package in the engine's normal dependency tree, by name.
fn engine_dependencies() -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "--offline", "-p", "loomiere-engine", "-e", "normal", "--prefix", "none", "--format", "{p}"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines().filter_map(|l| l.split_whitespace().next()).map(str::to_string).collect()
}

#[test]
fn engine_has_no_runtime_http_or_tables() {
    let deps = engine_dependencies();
    assert!(deps.iter().any(|d| d == "loomiere-engine"), "the tree names the engine itself: {deps:?}");
    assert!(deps.iter().any(|d| d == "memmap2"), "the tree is the engine's: {deps:?}");
    let banned = [
        "tokio",
        "mio",
        "async-std",
        "smol",
        "futures",
        "hyper",
        "h2",
        "http",
        "axum",
        "actix-web",
        "reqwest",
        "ureq",
        "comfy-table",
        "tabled",
        "prettytable-rs",
        "crossterm",
        "loomiere-http",
        "loomiere-bench",
    ];
    let found: Vec<&String> = deps.iter().filter(|d| banned.contains(&d.as_str())).collect();
    assert!(found.is_empty(), "the engine crate must not depend on {found:?}");
}
