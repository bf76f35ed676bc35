//! `loomiere completions SHELL` (clap_complete) and the hidden `loomiere man` (clap_mangen):
//! both generated from the same clap definition as the parser, printed to stdout. The
//! checked-in copies in `completions/` and `docs/loomiere.1` are kept current by
//! `tests/completions.rs` (`UPDATE_COMPLETIONS=1 cargo test --test completions`).

use anyhow::Result;
use clap::CommandFactory;
use clap_complete::Shell;
use std::io::Write;

#[derive(clap::Args)]
pub struct Args {
    /// The shell to write a completion script for.
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn run(a: Args) -> Result<()> {
    let mut cmd = crate::Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "loomiere", &mut out);
    std::io::stdout().lock().write_all(&out)?;
    Ok(())
}

#[derive(clap::Args)]
pub struct ManArgs {}

pub fn man(_a: ManArgs) -> Result<()> {
    std::io::stdout().lock().write_all(&man_page()?)?;
    Ok(())
}

/// One page for the whole tool: the top-level sections, then a section per visible
/// subcommand with its synopsis and options (clap_mangen would otherwise refer to
/// `loomiere-SUB(1)` pages that are not installed).
fn man_page() -> Result<Vec<u8>> {
    let mut cmd = crate::Cli::command();
    cmd.build();
    let top = clap_mangen::Man::new(cmd.clone());
    let mut out = Vec::new();
    top.render_title(&mut out)?;
    top.render_name_section(&mut out)?;
    top.render_synopsis_section(&mut out)?;
    top.render_description_section(&mut out)?;
    top.render_options_section(&mut out)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        let name = format!("loomiere {}", sub.get_name());
        out.extend_from_slice(format!(".SH \"{}\"\n", name.to_uppercase()).as_bytes());
        let page = clap_mangen::Man::new(sub.clone());
        let mut part = Vec::new();
        page.render_description_section(&mut part)?;
        page.render_synopsis_section(&mut part)?;
        page.render_options_section(&mut part)?;
        let part = String::from_utf8_lossy(&part)
            .replace(".SH DESCRIPTION\n", "")
            .replace(".SH SYNOPSIS\n", ".SS Synopsis\n")
            .replace(".SH OPTIONS\n", ".SS Options\n");
        out.extend_from_slice(part.as_bytes());
    }
    top.render_version_section(&mut out)?;
    Ok(out)
}
