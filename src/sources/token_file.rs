//! Token files: a credential the exporter rotates (a Webex OAuth refresh token, a Commvault
//! access/refresh token pair) lives in a private file, replaced atomically, so a crash or
//! restart at any point leaves the old token or the new one, whole.

use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use crate::config::Secret;

/// Why a token file gives no token.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TokenFileError {
    #[error("refresh token file {} is empty", .0.display())]
    Empty(PathBuf),
    #[error("cannot read refresh token file {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
}

pub(crate) fn read_token_file(path: &Path) -> Result<Secret, TokenFileError> {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => Ok(Secret::new(s.trim())),
        Ok(_) => Err(TokenFileError::Empty(path.to_path_buf())),
        Err(source) => Err(TokenFileError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The steps of `write_token_file`, for tests that stop it part-way, as a crash would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    TempCreated,
    TempWritten,
    TempSynced,
    Renamed,
}

/// Replaces `path` with `token` atomically: write a temporary file in the same directory
/// (mode 0600), fsync it, rename it over `path`, fsync the directory. At every point the file
/// holds either the old token or the new one, whole. `after` runs after each step; an error
/// from it stops the write there.
pub(crate) fn write_token_file(
    path: &Path,
    token: &str,
    after: &mut dyn FnMut(Step) -> io::Result<()>,
) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file path"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp: PathBuf = dir.join(tmp_name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    after(Step::TempCreated)?;
    f.write_all(token.as_bytes())?;
    f.write_all(b"\n")?;
    after(Step::TempWritten)?;
    f.sync_all()?;
    after(Step::TempSynced)?;
    std::fs::rename(&tmp, path)?;
    after(Step::Renamed)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_stopped_at_any_step_leaves_a_whole_old_or_new_token() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let path = dir.join("refresh");
        for stop_at in [
            Step::TempCreated,
            Step::TempWritten,
            Step::TempSynced,
            Step::Renamed,
        ] {
            std::fs::write(&path, "old-token\n").unwrap();
            let err = write_token_file(&path, "new-token", &mut |s| {
                if s == stop_at {
                    Err(io::Error::other("crash"))
                } else {
                    Ok(())
                }
            });
            assert!(err.is_err());
            let on_disk = read_token_file(&path).unwrap();
            let expected = if stop_at == Step::Renamed {
                "new-token"
            } else {
                "old-token"
            };
            assert_eq!(on_disk.expose(), expected, "stopped after {stop_at:?}");
            // The next write succeeds over whatever the crash left behind.
            write_token_file(&path, "next-token", &mut |_| Ok(())).unwrap();
            assert_eq!(read_token_file(&path).unwrap().expose(), "next-token");
        }
    }

    #[test]
    fn token_file_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let path = dir.join("refresh");
        std::fs::write(&path, "old\n").unwrap();
        write_token_file(&path, "new", &mut |_| Ok(())).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn unreadable_or_empty_token_files_are_clear_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let empty = dir.join("empty");
        std::fs::write(&empty, "  \n").unwrap();
        assert!(read_token_file(&empty)
            .unwrap_err()
            .to_string()
            .contains("is empty"));
        assert!(read_token_file(&dir.join("missing"))
            .unwrap_err()
            .to_string()
            .contains("cannot read"));
    }
}
