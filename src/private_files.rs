//! herald's own files are private to the user it runs as: the data
//! directory is created 0700, and the SQLite file (which holds the
//! link-signing secret), its `-wal`/`-shm` companions and the outbox's
//! `.eml` files (which hold live confirmation links) are 0600, whatever the
//! umask. SQLite gives `-wal` and `-shm` the mode of the database file, so
//! creating that file 0600 before SQLite opens it is enough.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub const DIR_MODE: u32 = 0o700;
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) with mode 0700. A directory that
/// already exists keeps its mode; a warning names it when others can read it.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    if !dir.exists() {
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)?;
        // The mode given to mkdir is filtered by the umask; set it outright.
        std::fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))?;
    } else if let Ok(meta) = std::fs::metadata(dir) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                dir = %dir.display(),
                mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "this directory holds herald's private files but others may open it; consider chmod 700"
            );
        }
    }
    Ok(())
}

/// Makes sure `file` exists with mode 0600: created so if missing, and
/// narrowed to 0600 if an older herald left it readable by others. The
/// same is done for SQLite's `-wal` and `-shm` files when they exist.
pub fn ensure_private_sqlite_file(file: &Path) -> io::Result<()> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(FILE_MODE)
        .open(file)?;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut path = file.as_os_str().to_owned();
        path.push(suffix);
        restrict_file(Path::new(&path))?;
    }
    Ok(())
}

/// Narrows an existing file to 0600; a missing file is not an error.
pub fn restrict_file(path: &Path) -> io::Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.permissions().mode() & 0o777 != FILE_MODE => {
            std::fs::set_permissions(path, Permissions::from_mode(FILE_MODE))
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes `bytes` to a new file of mode 0600; an existing file is never
/// overwritten (`AlreadyExists`).
pub fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write as _;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
