//! The control token: the secret that approving, denying, pausing and notes need.
//!
//! In: the state folder. Out: the token, 32 random bytes as 64 hex digits, kept in
//! `<state-dir>/control-token` (mode 0600, with a newline), made at `serve` start when
//! missing; the hook and the CLI read the same file. [`matches()`] compares in constant time.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The token file's name in the state folder.
pub const FILE_NAME: &str = "control-token";

/// `n` random bytes from the system's generator.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    use ring::rand::SecureRandom;
    let mut out = [0u8; N];
    // The system generator does not fail on the systems we run on; if it did, no token is better than a guessable one.
    ring::rand::SystemRandom::new().fill(&mut out).expect("the system's random generator");
    out
}

/// Whether `s` has the shape of a token (64 hex digits).
pub fn well_formed(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The token in `state_dir`, made (mode 0600) if missing or malformed; a token file
/// readable by others is made private again. Errors: the file cannot be read or written.
pub fn load_or_create(state_dir: &Path) -> std::io::Result<(String, PathBuf)> {
    let path = state_dir.join(FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(s) if well_formed(s.trim()) => {
            restrict(&path)?;
            return Ok((s.trim().to_owned(), path));
        }
        Ok(_) => tracing::warn!(path = %path.display(), "Control token file is malformed; writing a new token."),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let token = super::hex(&random_bytes::<32>());
    // Written under a temporary name with its final mode, then renamed: never readable by others, never half-written.
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp)?;
    f.write_all(format!("{token}\n").as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, &path)?;
    tracing::info!(path = %path.display(), "Control token created.");
    Ok((token, path))
}

#[cfg(unix)]
fn restrict(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "Control token file was readable by others; made private.");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict(_: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Read the token a daemon wrote at `path`. Errors: unreadable, or not a token.
pub fn read(path: &Path) -> std::io::Result<String> {
    let s = std::fs::read_to_string(path)?;
    let t = s.trim();
    if !well_formed(t) {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "not a control token (64 hex digits)"));
    }
    Ok(t.to_owned())
}

/// Whether `given` is `token`, in time that does not depend on where they differ.
pub fn matches(token: &str, given: &str) -> bool {
    let (a, b) = (token.as_bytes(), given.as_bytes());
    if a.len() != b.len() || a.is_empty() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_made_once_private_and_kept() {
        let dir = std::env::temp_dir().join(format!("cs-token-{}", super::super::hex(&random_bytes::<8>())));
        std::fs::create_dir_all(&dir).unwrap();
        let (t, path) = load_or_create(&dir).unwrap();
        assert!(well_formed(&t));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{t}\n"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let (again, _) = load_or_create(&dir).unwrap();
        assert_eq!(again, t);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(read(&path).unwrap(), t);
        assert!(matches(&t, &t));
        assert!(!matches(&t, &again[..63]));
        assert!(!matches(&t, &"0".repeat(64)));
        assert!(!matches("", ""));
        let _ = std::fs::remove_dir_all(dir);
    }
}
