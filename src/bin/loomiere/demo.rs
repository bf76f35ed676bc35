//! `loomiere demo [DIR]`: makes sample media (ffmpeg) for `loomiere serve` to show.

use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Where to write the samples.
    #[arg(default_value = loomiere::demo::DEFAULT_DIR)]
    pub dir: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    for f in loomiere::demo::make(&a.dir)? {
        println!("{}", f.display());
    }
    if a.dir == std::path::Path::new(loomiere::demo::DEFAULT_DIR) {
        eprintln!("now run: loomiere serve   (and open the printed address in a browser)");
    } else {
        eprintln!("now run: loomiere serve {}", a.dir.display());
    }
    Ok(())
}
