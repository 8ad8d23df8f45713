//! The platform's local secrets, kept in the data directory and readable by the owner only:
//! the keys that sign access tokens (`signing.key`) and that seal TOTP seeds (`totp.key`),
//! and the first administrator's generated password.
//!
//! A key file is a ring, one key per line, the current key first: `iot-local rotate-keys`
//! puts a new key first and keeps the previous ones, so tokens and seeds made under them
//! still verify and open.

use iot_core::auth::secret::random_token;
use std::io::Write;
use std::path::Path;

use crate::error::LocalError;

/// Writes a new file readable by its owner only; fails if it exists.
pub(crate) fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(content.as_bytes())
}

/// Reads the file, or creates it with `make()` on the first start.
fn read_or_create(path: &Path, make: impl FnOnce() -> String) -> std::io::Result<(String, bool)> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((text.trim().to_owned(), false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let value = make();
            write_private(path, &format!("{value}\n"))?;
            Ok((value, true))
        }
        Err(e) => Err(e),
    }
}

/// The access-token signing keys, current first: 32 random bytes made on the first start.
pub fn signing_keys(data_dir: &Path) -> Result<String, LocalError> {
    key_ring(&data_dir.join(SIGNING_KEYS))
}

/// The keys that seal TOTP seeds, current first; made on the first start.
pub fn sealing_keys(data_dir: &Path) -> Result<String, LocalError> {
    key_ring(&data_dir.join(SEALING_KEYS))
}

const SIGNING_KEYS: &str = "signing.key";
const SEALING_KEYS: &str = "totp.key";
/// How many keys a ring keeps after a rotation: the new one and the two before it.
const RING_SIZE: usize = 3;

fn key_ring(path: &Path) -> Result<String, LocalError> {
    let (text, _) = read_or_create(path, || random_token(32)).map_err(LocalError::file(path))?;
    if text.split_whitespace().any(|key| key.len() < 43) {
        return Err(LocalError::Invalid(format!(
            "{} holds a key shorter than 32 bytes; remove that line (an empty ring is made anew, and everyone logs in again)",
            path.display()
        )));
    }
    Ok(text)
}

/// Puts a new key first in both rings and keeps the two before it; answers the new rings'
/// sizes. The running platform reads them when it starts next.
pub fn rotate_keys(data_dir: &Path) -> Result<[usize; 2], LocalError> {
    let mut sizes = [0; 2];
    for (size, name) in sizes.iter_mut().zip([SIGNING_KEYS, SEALING_KEYS]) {
        let path = data_dir.join(name);
        let old = key_ring(&path)?;
        let ring: Vec<String> = std::iter::once(random_token(32))
            .chain(old.split_whitespace().map(str::to_owned))
            .take(RING_SIZE)
            .collect();
        let next = data_dir.join(format!("{name}.next"));
        let _ = std::fs::remove_file(&next);
        write_private(&next, &format!("{}\n", ring.join("\n")))
            .and_then(|()| std::fs::rename(&next, &path))
            .map_err(LocalError::file(&path))?;
        *size = ring.len();
    }
    Ok(sizes)
}

/// The simulator's key: the simulated devices' tokens are derived from it, so `iot-local sim`
/// signs in as the devices `up --demo` made, reading only this file.
pub fn simulator_key(data_dir: &Path) -> Result<String, LocalError> {
    let path = data_dir.join(SIMULATOR_KEY);
    read_or_create(&path, || random_token(32))
        .map(|(key, _)| key)
        .map_err(LocalError::file(&path))
}

/// The simulator key a running platform made; `iot-local sim` reads it and never makes one,
/// since a new key would match no device's token.
pub fn existing_simulator_key(data_dir: &Path) -> Result<String, LocalError> {
    let path = data_dir.join(SIMULATOR_KEY);
    std::fs::read_to_string(&path)
        .map(|key| key.trim().to_owned())
        .map_err(|e| {
            LocalError::Invalid(format!(
                "{}: {e}; start the platform with `iot-local up --demo` first, which gives the simulated devices their credentials",
                path.display()
            ))
        })
}

const SIMULATOR_KEY: &str = "simulator.key";

/// The device token of a simulated device: the secret part, derived from the simulator key.
pub fn simulated_device_secret(key: &str, uid: &str) -> String {
    iot_core::auth::secret::digest(&format!("simulated device {uid} {key}"))
}

/// The first administrator's password: the configured one, or one generated once and kept in
/// `<data_dir>/admin-password`. Returns it and whether it was generated just now.
pub fn admin_password(data_dir: &Path, configured: &str) -> Result<(String, bool), LocalError> {
    if !configured.is_empty() {
        return Ok((configured.to_owned(), false));
    }
    let path = data_dir.join("admin-password");
    read_or_create(&path, || random_token(12)).map_err(LocalError::file(&path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_made_once_private_and_then_reused() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let key = signing_keys(dir.path())?;
        assert_eq!(signing_keys(dir.path())?, key);
        let seal = sealing_keys(dir.path())?;
        assert_ne!(seal, key, "sealing has a key of its own");
        let (password, generated) = admin_password(dir.path(), "")?;
        assert!(generated && password.len() >= 16);
        assert_eq!(admin_password(dir.path(), "")?, (password, false));
        assert_eq!(
            admin_password(dir.path(), "given one")?,
            ("given one".into(), false)
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("signing.key"))?
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        Ok(())
    }

    #[test]
    fn rotation_puts_a_new_key_first_and_keeps_two_before_it()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let first = signing_keys(dir.path())?;
        assert_eq!(rotate_keys(dir.path())?, [2, 2]);
        let rotated = signing_keys(dir.path())?;
        let ring: Vec<&str> = rotated.split_whitespace().collect();
        assert_eq!(ring[1], first);
        assert_ne!(ring[0], first);
        rotate_keys(dir.path())?;
        assert_eq!(rotate_keys(dir.path())?, [3, 3]);
        let ring = signing_keys(dir.path())?;
        assert!(!ring.contains(&first), "the oldest key is dropped");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("totp.key"))?
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        Ok(())
    }
}
