//! Why one of `iot-local`'s commands cannot go on: the file, option or part it concerns and
//! what to change, so `main` prints one line and exits non-zero.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use thiserror::Error;

use iot_core::ports::StoreError;

#[derive(Debug, Error)]
pub enum LocalError {
    /// A file of the data directory or an output folder could not be read or written.
    #[error("{}: {source}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An option, a setting or a file's content that cannot be used; the words say what to do.
    #[error("{0}")]
    Invalid(String),
    /// A part that could not be made or reached: the device CA, the TLS listener, a device.
    #[error("{part}: {reason}")]
    Part { part: String, reason: String },
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Start(#[from] crate::platform::StartError),
    #[error("the database: {0}")]
    Database(#[from] iot_embedded::sqlite::DatabaseError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl LocalError {
    /// For `map_err`: an I/O error on `path`.
    pub fn file(path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_owned();
        move |source| Self::File { path, source }
    }

    /// For `map_err`: `part` failed with `e`.
    pub fn part<E: Display>(part: impl Into<String>) -> impl FnOnce(E) -> Self {
        let part = part.into();
        move |e| Self::Part {
            part,
            reason: e.to_string(),
        }
    }
}
