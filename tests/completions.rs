//! Keeps the checked-in shell completions (`completions/`) and man page (`docs/loomiere.1`)
//! identical to what the binary generates, so they never go stale when subcommands or
//! options change. After changing the CLI, regenerate them with
//!
//! ```text
//! UPDATE_COMPLETIONS=1 cargo test --test completions
//! ```

mod common;

use std::path::Path;

/// (arguments to `loomiere`, checked-in file).
const GENERATED: &[(&[&str], &str)] = &[
    (&["completions", "bash"], "completions/loomiere.bash"),
    (&["completions", "zsh"], "completions/_loomiere"),
    (&["completions", "fish"], "completions/loomiere.fish"),
    (&["man"], "docs/loomiere.1"),
];

fn generate(args: &[&str]) -> Vec<u8> {
    let out = common::run(common::loomiere().args(args));
    assert!(out.status.success(), "loomiere {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    assert!(!out.stdout.is_empty(), "loomiere {args:?} printed nothing");
    out.stdout
}

#[test]
fn checked_in_completions_and_man_page_are_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let update = std::env::var_os("UPDATE_COMPLETIONS").is_some_and(|v| v != "0");
    let mut stale = Vec::new();
    for (args, file) in GENERATED {
        let fresh = generate(args);
        let path = root.join(file);
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, &fresh).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
        } else if std::fs::read(&path).ok().as_deref() != Some(&fresh[..]) {
            stale.push(*file);
        }
    }
    assert!(
        stale.is_empty(),
        "stale generated files {stale:?}: regenerate with `UPDATE_COMPLETIONS=1 cargo test --test completions`"
    );
}

#[test]
fn every_shell_is_supported() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let text = String::from_utf8(generate(&["completions", shell])).unwrap();
        assert!(text.contains("bench"), "{shell} completion lacks the bench subcommand");
    }
    let out = common::run(common::loomiere().args(["completions", "tcsh"]));
    assert!(!out.status.success());
}

#[test]
fn bash_completion_script_loads() {
    let script = common::scratch("bash-completion").join("loomiere.bash");
    std::fs::write(&script, generate(&["completions", "bash"])).unwrap();
    let out = common::run(
        std::process::Command::new("bash").arg("-c").arg("source \"$0\" && complete -p loomiere").arg(&script),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("loomiere"));
}
