//! The platform's local secrets, kept in the data directory and readable by the owner only:
//! the key that signs access tokens, and the first administrator's generated password.

use iot_core::auth::secret::random_token;
use std::io::Write;
use std::path::Path;

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

/// The access-token signing key: 32 random bytes, made on the first start.
pub fn signing_key(data_dir: &Path) -> Result<Vec<u8>, String> {
    let path = data_dir.join("signing.key");
    let (text, _) = read_or_create(&path, || random_token(32))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if text.len() < 43 {
        return Err(format!(
            "{} holds a key shorter than 32 bytes; delete it to make a new one (everyone logs in again)",
            path.display()
        ));
    }
    Ok(text.into_bytes())
}

/// The simulator's key: the simulated devices' tokens are derived from it, so `iot-local sim`
/// signs in as the devices `up --demo` made, reading only this file.
pub fn simulator_key(data_dir: &Path) -> Result<String, String> {
    let path = data_dir.join(SIMULATOR_KEY);
    read_or_create(&path, || random_token(32))
        .map(|(key, _)| key)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The simulator key a running platform made; `iot-local sim` reads it and never makes one,
/// since a new key would match no device's token.
pub fn existing_simulator_key(data_dir: &Path) -> Result<String, String> {
    let path = data_dir.join(SIMULATOR_KEY);
    std::fs::read_to_string(&path)
        .map(|key| key.trim().to_owned())
        .map_err(|e| {
            format!(
                "{}: {e}; start the platform with `iot-local up --demo` first, which gives the simulated devices their credentials",
                path.display()
            )
        })
}

const SIMULATOR_KEY: &str = "simulator.key";

/// The device token of a simulated device: the secret part, derived from the simulator key.
pub fn simulated_device_secret(key: &str, uid: &str) -> String {
    iot_core::auth::secret::digest(&format!("simulated device {uid} {key}"))
}

/// The first administrator's password: the configured one, or one generated once and kept in
/// `<data_dir>/admin-password`. Returns it and whether it was generated just now.
pub fn admin_password(data_dir: &Path, configured: &str) -> Result<(String, bool), String> {
    if !configured.is_empty() {
        return Ok((configured.to_owned(), false));
    }
    let path = data_dir.join("admin-password");
    read_or_create(&path, || random_token(12)).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_made_once_private_and_then_reused() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let key = signing_key(dir.path())?;
        assert_eq!(signing_key(dir.path())?, key);
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
            let mode = std::fs::metadata(dir.path().join("signing.key"))
                .map_err(|e| e.to_string())?
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        Ok(())
    }
}
