//! The operator token: a random secret in the data directory (`operator.token`, readable by
//! its owner only). HTTP write methods other than miners' submissions need it as
//! `Authorization: Bearer <token>`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The token's file name in the data directory.
pub const FILE: &str = "operator.token";

/// The token file of a data directory.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

/// Reads the data directory's token, creating one (32 random bytes, hex) if there is none.
pub fn load_or_create(data_dir: &Path) -> Result<String> {
    let file = path(data_dir);
    match std::fs::read_to_string(&file) {
        Ok(text) => {
            let token = text.trim().to_string();
            if token.len() < 32 {
                bail!(
                    "{} holds a token shorter than 32 characters; delete it to have a new one made",
                    file.display()
                );
            }
            Ok(token)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret).context("reading the system's random source")?;
            let token = hex::encode(secret);
            write_private(&file, &token)?;
            Ok(token)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", file.display())),
    }
}

/// Writes `text` to `file` (owner-only on Unix), through a temporary file and a rename, so a
/// crash leaves either no token or the whole token.
fn write_private(file: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let tmp = file.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, file).with_context(|| format!("cannot write {}", file.display()))?;
    Ok(())
}

/// Whether an `Authorization` header value carries `token` (compared in constant time).
pub fn authorizes(header: Option<&str>, token: &str) -> bool {
    let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
        return false;
    };
    let (a, b) = (given.trim().as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_made_once_kept_private_and_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let token = load_or_create(tmp.path()).unwrap();
        assert_eq!(token.len(), 64);
        assert_eq!(load_or_create(tmp.path()).unwrap(), token);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path(tmp.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(authorizes(Some(&format!("Bearer {token}")), &token));
        assert!(!authorizes(Some(&token), &token), "the scheme is required");
        assert!(!authorizes(Some("Bearer wrong"), &token));
        assert!(!authorizes(None, &token));
        std::fs::write(path(tmp.path()), "short").unwrap();
        assert!(load_or_create(tmp.path()).is_err());
    }
}
