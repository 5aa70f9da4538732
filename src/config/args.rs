//! The settings of `quarry serve` as one struct of sections (each section
//! in its own file with its checks), and the one merge of flags over the
//! file: [`ServeArgs::over`].

use std::path::PathBuf;

use serde::Deserialize;

pub use super::ask::AskArgs;
pub use super::embed::EmbedArgs;
pub use super::limits::LimitArgs;
pub use super::security::SecurityArgs;
pub use super::server::ServerArgs;
pub use super::storage::StorageArgs;

/// Flags of `quarry serve`, and the keys of its TOML file: each setting
/// is declared once, in its section's file (its flag, its environment
/// variable, its file key, its help, and its check). The file is flat: its keys are the
/// settings' names, whatever their section.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(default)]
pub struct ServeArgs {
    /// TOML file with any of these settings, keyed as the flags with
    /// underscores (listen, data_dir, embed_model, ...). Relative paths in
    /// it are relative to the file.
    #[arg(long, env = "QUARRY_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    #[allow(missing_docs)]
    #[command(flatten)]
    #[serde(flatten)]
    pub server: ServerArgs,

    #[allow(missing_docs)]
    #[command(flatten)]
    #[serde(flatten)]
    pub embed: EmbedArgs,

    #[allow(missing_docs)]
    #[command(flatten)]
    #[serde(flatten)]
    pub storage: StorageArgs,

    #[allow(missing_docs)]
    #[command(flatten)]
    #[serde(flatten)]
    pub ask: AskArgs,

    #[allow(missing_docs)]
    #[command(flatten)]
    #[serde(flatten)]
    pub limits: LimitArgs,

    #[allow(missing_docs)]
    #[command(flatten)]
    #[serde(flatten)]
    pub security: SecurityArgs,
}

impl ServeArgs {
    /// These settings (flags and environment) over `file`'s: a value set
    /// here wins, section by section; `config` stays this one's.
    pub fn over(self, file: ServeArgs) -> ServeArgs {
        ServeArgs {
            config: self.config,
            server: self.server.over(file.server),
            embed: self.embed.over(file.embed),
            storage: self.storage.over(file.storage),
            ask: self.ask.over(file.ask),
            limits: self.limits.over(file.limits),
            security: self.security.over(file.security),
        }
    }
}

/// One setting's value over another's (a flag over the file's).
pub(super) trait Over {
    /// `self` if it was set, else `other`.
    fn over(self, other: Self) -> Self;
}

impl<T> Over for Option<T> {
    fn over(self, other: Self) -> Self {
        self.or(other)
    }
}

/// A switch is on when either turns it on (a flag cannot turn off what
/// the file turns on).
impl Over for bool {
    fn over(self, other: Self) -> Self {
        self || other
    }
}

/// Declares a section's struct as written and derives its merge from the
/// same field list, so that a new setting is written once (a field with
/// its flag, environment variable, help and file key) and merged without
/// another line.
macro_rules! section {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[$field_meta:meta])*
                pub $field:ident : $ty:ty,
            )*
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $(
                $(#[$field_meta])*
                pub $field: $ty,
            )*
        }

        impl $name {
            /// These settings over `other`'s: each set value wins.
            pub fn over(self, other: Self) -> Self {
                use $crate::config::args::Over as _;
                Self {
                    $($field: self.$field.over(other.$field),)*
                }
            }
        }
    };
}
pub(super) use section;
