//! The pidfile (`-pidfile PATH`): our pid and a newline, replaced atomically.
//!
//! During an upgrade the new process writes it before it says `ready`, and the old process
//! then exits without touching it. A process that exits for any other reason removes it only
//! if it still holds its own pid: another process may have taken it over.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::UpgradeError;

/// Writes our pid to `path`: into a temporary file in the same directory, then renamed over
/// `path`, so that a reader (systemd, `kill $(cat ...)`) sees the old content or the new one,
/// never a half-written file.
pub fn write_pidfile(path: &Path) -> Result<(), UpgradeError> {
    let err = |e| UpgradeError::Pidfile(path.to_owned(), e);
    let temp = temp_path(path).map_err(err)?;
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&temp)?;
        writeln!(file, "{}", std::process::id())?;
        fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written.map_err(err)
}

/// Removes `path` if it holds `pid`; `Ok(false)` when it is missing or names another
/// process (which then owns it).
pub fn remove_pidfile_if_ours(path: &Path, pid: u32) -> Result<bool, UpgradeError> {
    let err = |e| UpgradeError::Pidfile(path.to_owned(), e);
    let content = match fs::read_to_string(path) {
        Ok(content) => content,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(err(e)),
    };
    if content.trim().parse::<u32>().ok() != Some(pid) {
        return Ok(false);
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(err(e)),
    }
}

/// `.NAME.PID.tmp` beside `path`: same directory (a rename does not cross file systems),
/// hidden, and distinct per process.
fn temp_path(path: &Path) -> io::Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "a pidfile path names a file")
    })?;
    let mut temp = std::ffi::OsString::from(".");
    temp.push(name);
    temp.push(format!(".{}.tmp", std::process::id()));
    Ok(path.with_file_name(temp))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;
    use crate::test_util::tempdir::TempDir;

    fn entries(dir: &TempDir) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn pidfile_holds_our_pid_and_no_temporary_is_left() {
        let dir = TempDir::new("pidfile-write");
        let path = dir.join("goaround.pid");
        write_pidfile(&path).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("{}\n", std::process::id())
        );
        assert_eq!(entries(&dir), ["goaround.pid"]);
    }

    #[test]
    fn pidfile_is_replaced_by_rename_not_rewritten_in_place() {
        let dir = TempDir::new("pidfile-rename");
        let path = dir.write("goaround.pid", b"1\n");
        let before = fs::metadata(&path).unwrap().ino();
        // A reader holding the old file keeps reading the old content.
        let reader = fs::File::open(&path).unwrap();
        write_pidfile(&path).unwrap();
        assert_ne!(fs::metadata(&path).unwrap().ino(), before);
        assert_eq!(io::read_to_string(reader).unwrap(), "1\n");
        assert_eq!(entries(&dir), ["goaround.pid"]);
    }

    #[test]
    fn pidfile_in_a_missing_directory_is_an_error_naming_it() {
        let dir = TempDir::new("pidfile-missing");
        let path = dir.join("no/such/dir/goaround.pid");
        let err = write_pidfile(&path).unwrap_err();
        assert!(err
            .to_string()
            .starts_with(&format!("pidfile {}: ", path.display())));
    }

    #[test]
    fn pidfile_is_removed_only_while_it_is_ours() {
        let dir = TempDir::new("pidfile-remove");
        let path = dir.join("goaround.pid");
        assert!(!remove_pidfile_if_ours(&path, 42).unwrap(), "missing file");

        fs::write(&path, "43\n").unwrap();
        assert!(
            !remove_pidfile_if_ours(&path, 42).unwrap(),
            "someone else's"
        );
        assert!(path.exists());

        fs::write(&path, "not a pid").unwrap();
        assert!(!remove_pidfile_if_ours(&path, 42).unwrap(), "garbage");
        assert!(path.exists());

        fs::write(&path, "42\n").unwrap();
        assert!(remove_pidfile_if_ours(&path, 42).unwrap());
        assert!(!path.exists());

        write_pidfile(&path).unwrap();
        assert!(remove_pidfile_if_ours(&path, std::process::id()).unwrap());
    }
}
