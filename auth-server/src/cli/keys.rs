//! `auth-server keys …`. A running server picks up a rotated key within its reload interval.

use clap::Subcommand;

use crate::keys::files;
use crate::Settings;

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// The keys in the keys directory, newest (the signing one) first.
    List,
    /// Create a new signing key; older keys stay published.
    Rotate,
}

pub fn run(settings: &Settings, command: KeysCommand) -> anyhow::Result<()> {
    let dir = &settings.keys_dir;
    match command {
        KeysCommand::List => {
            let keys = files::load_or_create(dir)?;
            for (n, key) in keys.iter().enumerate() {
                println!(
                    "{}\t{}",
                    key.kid(),
                    if n == 0 { "active" } else { "published" }
                );
            }
        }
        KeysCommand::Rotate => {
            files::load_or_create(dir)?;
            let path = files::generate(dir)?;
            let keys = files::load(dir)?;
            let kid = keys.first().map(|k| k.kid().to_owned()).unwrap_or_default();
            println!("new signing key {kid} ({})", path.display());
        }
    }
    Ok(())
}
