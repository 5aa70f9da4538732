//! `quarry keys create NAME --role ROLE`: a new API key, printed once; its
//! SHA-256 goes into the keys file the server reads (`--keys-file`).

use std::path::PathBuf;

use quarry::auth::{digest, new_key, KeyEntry, KeysFile, Role};

/// API key management (local: edits the keys file).
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Create a key; the key is printed once and only its hash is stored.
    Create {
        /// The principal's name (recorded with its asks): 1-64 characters
        /// of A-Z, a-z, 0-9, '_', '.', '@' and '-'.
        name: String,
        /// reader (Search, Embed, Ask, own history), writer (+ documents),
        /// admin (+ collections, everyone's history).
        #[arg(long)]
        role: Role,
        /// Collections the key may use (comma-separated); all when absent.
        #[arg(long, value_delimiter = ',')]
        collections: Option<Vec<String>>,
        /// The keys file (created if missing).
        #[arg(long, env = "QUARRY_KEYS_FILE", default_value = "quarry-keys.toml")]
        keys_file: PathBuf,
    },
    /// List the keys' names, roles and collections (never the keys).
    List {
        /// The keys file.
        #[arg(long, env = "QUARRY_KEYS_FILE", default_value = "quarry-keys.toml")]
        keys_file: PathBuf,
    },
}

/// Runs a keys subcommand.
pub fn run(cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Create {
            name,
            role,
            collections,
            keys_file,
        } => {
            anyhow::ensure!(
                (1..=64).contains(&name.len())
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_.@-".contains(&b)),
                "NAME must be 1-64 characters of A-Z, a-z, 0-9, '_', '.', '@' and '-'"
            );
            let mut file = KeysFile::read(&keys_file, true)?;
            anyhow::ensure!(
                !file.keys.iter().any(|k| k.name == name),
                "{} already has a key named {name:?}",
                keys_file.display()
            );
            let key = new_key()?;
            file.keys.push(KeyEntry {
                name: name.clone(),
                role,
                sha256: digest(&key),
                collections,
            });
            file.write(&keys_file)?;
            eprintln!(
                "key {name:?} ({}) added to {}; it is shown once, here:",
                role.as_str(),
                keys_file.display()
            );
            println!("{key}");
        }
        KeysCommand::List { keys_file } => {
            for k in KeysFile::read(&keys_file, false)?.keys {
                let scope = k
                    .collections
                    .map_or("all collections".to_owned(), |c| c.join(", "));
                println!("{}\t{}\t{scope}", k.name, k.role.as_str());
            }
        }
    }
    Ok(())
}
