//! Private data on disk: every directory this server creates for its data is `0700` and every
//! data file (SQLite database and its `-wal`/`-shm`, the ingest spool, its `.dead`, `.lock` and
//! `.tmp` siblings) is `0600`, set explicitly at creation, whatever the process umask says.
//! Files from older builds are tightened at startup. Holds no policy about *what* is stored.

use std::{
    fs::{self, DirBuilder, OpenOptions},
    io,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

/// Mode of the directories holding data.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every data file.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` and its missing parents with mode `0700`. An existing directory is left as it
/// is (it may be shared, like `/tmp`); an empty path (the current directory) is a no-op.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// `OpenOptions` whose `create` makes the file with mode `0600`; set read/write/append as usual.
pub fn private_file() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(FILE_MODE);
    options
}

/// Restricts an existing file to `0600`; a missing file is fine.
pub fn restrict_file(path: &Path) -> io::Result<()> {
    match fs::metadata(path) {
        Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o777 != FILE_MODE => {
            fs::set_permissions(path, fs::Permissions::from_mode(FILE_MODE))
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// `path` with `suffix` appended to its file name (`db` + `-wal` → `db-wal`).
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Gets an SQLite database file ready to open: its directory created `0700` when missing, the
/// file itself created empty with `0600` when missing (SQLite treats an empty file as a new
/// database, and creates `-wal`, `-shm` and `-journal` with the database file's mode), and an
/// existing database and its companions tightened to `0600`.
pub fn prepare_sqlite_file(path: &Path) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        private_dir(dir)?;
    }
    private_file()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    for file in sqlite_files(path) {
        restrict_file(&file)?;
    }
    Ok(())
}

/// The database file and the companions SQLite may create beside it.
fn sqlite_files(path: &Path) -> [PathBuf; 4] {
    [
        path.to_path_buf(),
        with_suffix(path, "-wal"),
        with_suffix(path, "-shm"),
        with_suffix(path, "-journal"),
    ]
}

/// The ingest spool and the files kept beside it.
fn spool_files(path: &Path) -> [PathBuf; 4] {
    [
        path.to_path_buf(),
        with_suffix(path, ".dead"),
        with_suffix(path, ".lock"),
        with_suffix(path, ".tmp"),
    ]
}

/// What [`secure_data_dir`] changed, for the startup log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tightened {
    /// The data directory's previous mode, when it was wider than `0700`.
    pub dir_was: Option<u32>,
    /// Data files that were wider than `0600`.
    pub files: Vec<PathBuf>,
}

/// At startup: creates `DATA_DIR` with `0700` (or tightens it to `0700` when it exists wider,
/// unless it is a shared sticky directory such as `/tmp` or the filesystem root), and tightens
/// the existing database and spool files (older builds created them world-readable).
pub fn secure_data_dir(
    data_dir: &Path,
    sqlite: Option<&Path>,
    spool: &Path,
) -> io::Result<Tightened> {
    let mut tightened = Tightened::default();
    if !data_dir.as_os_str().is_empty() {
        private_dir(data_dir)?;
        let mode = fs::metadata(data_dir)?.permissions().mode();
        // Never the root, the working directory or a sticky directory shared by many users.
        let shared = mode & 0o1000 != 0
            || data_dir.parent().is_none()
            || data_dir
                .components()
                .all(|c| matches!(c, std::path::Component::CurDir));
        if mode & 0o077 != 0 && !shared {
            fs::set_permissions(data_dir, fs::Permissions::from_mode(DIR_MODE))?;
            tightened.dir_was = Some(mode & 0o777);
        }
    }
    let files = sqlite
        .map(sqlite_files)
        .into_iter()
        .flatten()
        .chain(spool_files(spool));
    for file in files {
        if fs::metadata(&file).is_ok_and(|m| m.permissions().mode() & 0o077 != 0) {
            restrict_file(&file)?;
            tightened.files.push(file);
        }
    }
    Ok(tightened)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn private_dirs_and_files_ignore_a_permissive_umask() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        private_dir(&dir).unwrap();
        assert_eq!(mode(&root.path().join("a")), 0o700);
        assert_eq!(mode(&dir), 0o700);
        let file = dir.join("f");
        private_file()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&file)
            .unwrap();
        assert_eq!(mode(&file), 0o600);
    }

    #[test]
    fn an_existing_world_readable_data_dir_and_its_files_are_tightened() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        fs::create_dir(&data).unwrap();
        fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).unwrap();
        let db = data.join("x.db");
        let spool = data.join("spool.ndjson");
        for f in [
            &db,
            &with_suffix(&db, "-wal"),
            &with_suffix(&spool, ".dead"),
        ] {
            fs::write(f, "x").unwrap();
            fs::set_permissions(f, fs::Permissions::from_mode(0o644)).unwrap();
        }
        let done = secure_data_dir(&data, Some(&db), &spool).unwrap();
        assert_eq!(done.dir_was, Some(0o755));
        assert_eq!(done.files.len(), 3);
        assert_eq!(mode(&data), 0o700);
        for f in [
            &db,
            &with_suffix(&db, "-wal"),
            &with_suffix(&spool, ".dead"),
        ] {
            assert_eq!(mode(f), 0o600, "{}", f.display());
        }
        assert_eq!(
            secure_data_dir(&data, Some(&db), &spool).unwrap(),
            Tightened::default(),
            "nothing left to do"
        );
    }

    #[test]
    fn a_shared_sticky_directory_is_never_tightened() {
        let root = tempfile::tempdir().unwrap();
        fs::set_permissions(root.path(), fs::Permissions::from_mode(0o1777)).unwrap();
        let done = secure_data_dir(root.path(), None, &root.path().join("s")).unwrap();
        assert_eq!(done.dir_was, None);
        assert_eq!(mode(root.path()), 0o777);
    }

    #[test]
    fn a_new_sqlite_file_is_created_private_and_an_old_one_tightened() {
        let root = tempfile::tempdir().unwrap();
        let db = root.path().join("new/x.db");
        prepare_sqlite_file(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        assert_eq!(mode(db.parent().unwrap()), 0o700);
        fs::set_permissions(&db, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(with_suffix(&db, "-shm"), "").unwrap();
        prepare_sqlite_file(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        assert_eq!(mode(&with_suffix(&db, "-shm")), 0o600);
    }
}
