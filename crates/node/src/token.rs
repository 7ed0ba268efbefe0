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
/// Processes racing to create it all end with the same token: the first to publish it wins.
pub fn load_or_create(data_dir: &Path) -> Result<String> {
    let file = path(data_dir);
    match read(&file)? {
        Some(token) => Ok(token),
        None => {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret).context("reading the system's random source")?;
            let token = hex::encode(secret);
            if publish_private(&file, &token)? {
                Ok(token)
            } else {
                read(&file)?.with_context(|| {
                    format!(
                        "{} was made by another process and removed again; start once more",
                        file.display()
                    )
                })
            }
        }
    }
}

/// The token in `file`; `None` if there is no such file.
fn read(file: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(file) {
        Ok(text) => {
            let token = text.trim().to_string();
            if token.len() < 32 {
                bail!(
                    "{} holds a token shorter than 32 characters; delete it to have a new one made",
                    file.display()
                );
            }
            Ok(Some(token))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", file.display())),
    }
}

/// Writes `text` to a temporary file of its own (owner-only on Unix), then links it as
/// `file` unless `file` exists by then; `false` if another process published first. A crash
/// leaves either no token or the whole token.
fn publish_private(file: &Path, text: &str) -> Result<bool> {
    use std::io::Write;
    let mut tag = [0u8; 8];
    getrandom::fill(&mut tag).context("reading the system's random source")?;
    let tmp = file.with_extension(format!("tmp.{}", hex::encode(tag)));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    // A hard link never replaces an existing file, unlike a rename.
    let linked = std::fs::hard_link(&tmp, file);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot write {}", file.display())),
    }
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
        // Processes creating it at the same time agree on one token.
        let fresh = tempfile::tempdir().unwrap();
        let dir = fresh.path().to_path_buf();
        let tokens: Vec<String> = (0..8)
            .map(|_| {
                let dir = dir.clone();
                std::thread::spawn(move || load_or_create(&dir).unwrap())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        assert!(tokens.iter().all(|t| *t == tokens[0]), "{tokens:?}");
        std::fs::write(path(tmp.path()), "short").unwrap();
        assert!(load_or_create(tmp.path()).is_err());
    }
}
