//! The archive in a local (or mounted) directory.
//!
//! A recording is written to `NAME.mp4.part` beside its destination (same file system, so
//! the final `rename` is atomic), hashed while it streams, fsynced every
//! `checkpoint_bytes` (the offset, the server's ETag and the running SHA-256 state are
//! then recorded in one transaction), and renamed once complete, the folder fsynced: after
//! a crash a file either has its final name with all its bytes, or is still a `.part`
//! that the next run resumes from its last checkpoint.
//!
//! The receive loop only hands chunks over (`feed`); each transfer's own thread hashes,
//! writes and checkpoints them (`disk`), so that neither the hash nor an `fsync` holds up
//! the network (`writer` joins the two).

mod disk;
mod feed;
mod writer;

use super::{
    Archive, ArchiveError, ArchiveWriter, Digest, ListedObject, Listing, OpenWriter, PART_SUFFIX,
    READ_BUFFER, ReadError, Resume, Start, WriteError, hash_state, layout,
};
use crate::domain::RecordFileId;
use crate::state::{Db, DbError, FileRow};
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use sha2::{Digest as _, Sha256};
use std::collections::HashSet;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use writer::{LocalWriter, PartFile};

/// The archive root on a local file system.
#[derive(Debug, Clone)]
pub struct LocalArchive {
    root: PathBuf,
    store: Db,
    /// Bytes between two durable checkpoints of a transfer.
    checkpoint_bytes: u64,
}

impl LocalArchive {
    pub fn new(root: impl Into<PathBuf>, store: Db) -> Self {
        Self {
            root: root.into(),
            store,
            checkpoint_bytes: DEFAULT_CHECKPOINT_BYTES,
        }
    }

    /// Checkpoints every `bytes` (`download.checkpoint_bytes`).
    pub fn with_checkpoints(mut self, bytes: u64) -> Self {
        self.checkpoint_bytes = bytes;
        self
    }

    /// The final path of a stored relative path (refusing any escape from the root).
    pub fn path_of(&self, relative: &str) -> Result<PathBuf, ArchiveError> {
        Ok(layout::resolve(&self.root, relative)?)
    }

    fn part_path_of(&self, relative: &str) -> Result<PathBuf, ArchiveError> {
        let mut path = self.path_of(relative)?.into_os_string();
        path.push(PART_SUFFIX);
        Ok(path.into())
    }

    /// Length of the `.part` file of `relative`, if there is one.
    async fn part_len(&self, relative: &str) -> Result<Option<u64>, ArchiveError> {
        let path = self.part_path_of(relative)?;
        match tokio::fs::metadata(&path).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ArchiveError::io("cannot read", &path, e, 0)),
        }
    }

    /// The hash of the first `len` bytes of a `.part` file, when its checkpoint saved no
    /// (readable) hash state.
    async fn hash_prefix(&self, relative: &str, len: u64) -> Result<Sha256, ArchiveError> {
        let path = self.part_path_of(relative)?;
        tokio::task::spawn_blocking(move || {
            let io = |e| ArchiveError::io("cannot read", &path, e, 0);
            let file = std::fs::File::open(&path).map_err(io)?;
            let mut reader = file.take(len);
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; READ_BUFFER];
            loop {
                let n = reader.read(&mut buf).map_err(io)?;
                if n == 0 {
                    return Ok(hasher);
                }
                hasher.update(&buf[..n]);
            }
        })
        .await
        .expect("hashing does not panic")
    }

    /// Removes the folders of `relative` that are left empty, deepest first, never the
    /// root: a relayout leaves no trail of empty folders. A folder still holding anything
    /// (or that cannot be removed) ends the climb.
    async fn remove_empty_parents(&self, relative: &str) {
        let mut dir = Path::new(relative).parent();
        while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
            if tokio::fs::remove_dir(self.root.join(d)).await.is_err() {
                break;
            }
            dir = d.parent();
        }
    }

    /// Writes a small file atomically (temporary name, fsync, rename). `bytes` moves to the
    /// blocking thread as it is, not copied: an audit segment is megabytes.
    pub async fn write_small(&self, relative: &str, bytes: Bytes) -> Result<(), ArchiveError> {
        let dest = self.path_of(relative)?;
        if let Some(dir) = dest.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| ArchiveError::io("cannot create folder", dir, e, 0))?;
        }
        let mut tmp = dest.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let needed = bytes.len() as u64;
        let written = tmp.clone();
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let write = || {
                let mut file = std::fs::File::create(&written)
                    .map_err(|e| ArchiveError::io("cannot create", &written, e, needed))?;
                file.write_all(&bytes)
                    .map_err(|e| ArchiveError::io("cannot write", &written, e, needed))?;
                file.sync_all()
                    .map_err(|e| ArchiveError::io("cannot sync", &written, e, needed))
            };
            let result = write();
            if result.is_err() {
                // A full disk, say: leave no half-written temporary behind (the database
                // still marks the folder's meeting.json as behind; it is written again).
                let _ = std::fs::remove_file(&written);
            }
            result
        })
        .await
        .expect("writing does not panic")?;
        tokio::fs::rename(&tmp, &dest)
            .await
            .map_err(|e| ArchiveError::io("cannot rename", &tmp, e, 0))?;
        sync_dir(&dest).await
    }
}

/// `download.checkpoint_bytes`'s default (16 MiB).
pub const DEFAULT_CHECKPOINT_BYTES: u64 = 16 * 1024 * 1024;

#[async_trait]
impl Archive for LocalArchive {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn locate(&self, relative: &str) -> String {
        self.root.join(relative).display().to_string()
    }

    /// The last checkpoint if its bytes are still in the `.part` file, with the saved hash
    /// state (or, failing that, the hash of those bytes); otherwise byte 0.
    async fn resume(&self, row: &FileRow) -> Result<Resume, WriteError> {
        let writer = Box::new(PartWriter {
            archive: self.clone(),
            file: row.clone(),
        });
        let offset = row.bytes_done;
        if offset == 0 || offset > row.record_size {
            return Ok(Resume::new(0, Sha256::new(), None, writer));
        }
        match self.part_len(&row.path).await? {
            Some(len) if len >= offset => {}
            _ => return Ok(Resume::new(0, Sha256::new(), None, writer)),
        }
        let hasher = match row.hash_state.as_deref().and_then(hash_state::restore) {
            Some(h) => h,
            None => {
                tracing::info!(file = %row.record_file_id, offset, "re-hashing the partial file");
                self.hash_prefix(&row.path, offset).await?
            }
        };
        Ok(Resume::new(offset, hasher, row.etag.clone(), writer))
    }

    async fn discard(&self, record_file_id: &RecordFileId) -> Result<(), DbError> {
        // The `.part` file stays: `--retry-failed` resumes from it.
        let _ = record_file_id;
        Ok(())
    }

    async fn put_small(&self, relative: &str, bytes: Bytes) -> Result<(), ArchiveError> {
        self.write_small(relative, bytes).await
    }

    async fn relocate(&self, from: &str, to: &str) -> Result<(), ArchiveError> {
        let pairs = [
            (self.path_of(from)?, self.path_of(to)?),
            (self.part_path_of(from)?, self.part_path_of(to)?),
        ];
        for (src, dst) in pairs {
            if tokio::fs::symlink_metadata(&src).await.is_err() {
                continue;
            }
            if let Some(dir) = dst.parent() {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| ArchiveError::io("cannot create", dir, e, 0))?;
            }
            tokio::fs::rename(&src, &dst)
                .await
                .map_err(|e| ArchiveError::io("cannot move", &src, e, 0))?;
            sync_dir(&dst).await?;
            sync_dir(&src).await?;
        }
        self.remove_empty_parents(from).await;
        Ok(())
    }

    async fn remove(&self, relative: &str) -> Result<(), ArchiveError> {
        let path = self.path_of(relative)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(ArchiveError::io("cannot remove", &path, e, 0)),
        }
        self.remove_empty_parents(relative).await;
        Ok(())
    }

    async fn read(
        &self,
        relative: &str,
    ) -> Result<BoxStream<'static, Result<Bytes, ArchiveError>>, ArchiveError> {
        use tokio::io::AsyncReadExt;
        let path = self.path_of(relative)?;
        let file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ArchiveError::NotFound(relative.to_string()));
            }
            Err(e) => return Err(ArchiveError::io("cannot open", &path, e, 0)),
        };
        Ok(
            stream::try_unfold((file, path), |(mut file, path)| async move {
                let mut buf = Vec::with_capacity(READ_BUFFER);
                let n = (&mut file)
                    .take(READ_BUFFER as u64)
                    .read_to_end(&mut buf)
                    .await
                    .map_err(|e| ArchiveError::io("cannot read", &path, e, 0))?;
                Ok((n > 0).then(|| (Bytes::from(buf), (file, path))))
            })
            .boxed(),
        )
    }

    async fn digest(&self, relative: &str) -> Result<Digest, ReadError> {
        // Resolved through the layout, so that a tampered database row cannot make
        // `verify` read (and report on) a file outside the archive root.
        let path = self.path_of(relative)?;
        // sha2 is CPU-bound and std reads block: both belong on the blocking pool, and the
        // caller bounds how many run at once (`--jobs`).
        tokio::task::spawn_blocking(move || hash_file(&path))
            .await
            .expect("hashing does not panic")
    }

    async fn size_of(&self, relative: &str) -> Result<Option<u64>, ArchiveError> {
        let path = self.path_of(relative)?;
        match tokio::fs::metadata(&path).await {
            Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ArchiveError::io("cannot look at", &path, e, 0)),
        }
    }

    async fn list(&self) -> Result<Listing, ReadError> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || walk(&root))
            .await
            .expect("listing does not panic")
    }

    /// The database and its companions, as paths relative to the root when the database
    /// lives under it (a config may put both in one folder).
    fn companions(&self, db: &Path) -> HashSet<String> {
        let mut out = HashSet::new();
        let parent = match db.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let (Ok(root), Ok(parent), Some(name)) = (
            self.root.canonicalize(),
            parent.canonicalize(),
            db.file_name(),
        ) else {
            return out;
        };
        let Ok(dir) = parent.strip_prefix(&root) else {
            return out;
        };
        for suffix in ["", "-wal", "-shm", "-journal", ".lock"] {
            let mut file = name.to_os_string();
            file.push(suffix);
            out.insert(dir.join(file).to_string_lossy().into_owned());
        }
        out
    }
}

/// Opens the `.part` file of one file.
struct PartWriter {
    archive: LocalArchive,
    file: FileRow,
}

#[async_trait]
impl OpenWriter for PartWriter {
    async fn open(self: Box<Self>, start: Start) -> Result<Box<dyn ArchiveWriter>, WriteError> {
        let Self { archive, file } = *self;
        let files = PartFile {
            part: archive.part_path_of(&file.path)?,
            dest: archive.path_of(&file.path)?,
            checkpoint_bytes: archive.checkpoint_bytes,
        };
        let writer = LocalWriter::open(files, archive.store.clone(), &file, start).await?;
        Ok(Box::new(writer))
    }
}

/// fsyncs the folder holding `path`, so that a rename survives a power cut.
async fn sync_dir(path: &Path) -> Result<(), ArchiveError> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || sync_dir_now(&path))
        .await
        .expect("syncing does not panic")
}

/// [`sync_dir`] on the calling thread.
fn sync_dir_now(path: &Path) -> Result<(), ArchiveError> {
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ArchiveError::io("cannot sync folder", dir, e, 0))
}

/// Size and SHA-256 of a local file, read in [`READ_BUFFER`] chunks.
pub fn hash_file(path: &Path) -> Result<Digest, ReadError> {
    let io = |action, e| ReadError::Archive(ArchiveError::io(action, path, e, 0));
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(ReadError::NotFound),
        Err(e) => return Err(io("cannot open", e)),
    };
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; READ_BUFFER];
    let mut size = 0u64;
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                size += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io("cannot read", e)),
        }
    }
    Ok(Digest {
        size,
        sha256: hex::encode(hasher.finalize()),
    })
}

/// Walks `root` without following symbolic links (a link to `/` must not make `verify`
/// walk the whole machine); links are listed as objects, so an unknown one is `extra`.
fn walk(root: &Path) -> Result<Listing, ReadError> {
    let mut listing = Listing::default();
    if let Err(e) = std::fs::metadata(root) {
        return match e.kind() {
            io::ErrorKind::NotFound => Ok(listing),
            _ => Err(ReadError::Archive(ArchiveError::io(
                "cannot list",
                root,
                e,
                0,
            ))),
        };
    }
    let relative = |p: &Path| {
        p.strip_prefix(root)
            .unwrap_or(p)
            .to_string_lossy()
            .into_owned()
    };
    for entry in walkdir::WalkDir::new(root).min_depth(1).follow_links(false) {
        match entry {
            Ok(entry) if entry.file_type().is_dir() => {}
            Ok(entry) => match entry.metadata() {
                Ok(m) => listing.objects.push(ListedObject {
                    path: relative(entry.path()),
                    size: m.len(),
                }),
                Err(e) => listing
                    .unreadable
                    .push((relative(entry.path()), format!("cannot stat: {e}"))),
            },
            Err(e) if e.depth() == 0 => {
                return Err(ReadError::Archive(ArchiveError::io(
                    "cannot list",
                    root,
                    e.into(),
                    0,
                )));
            }
            Err(e) => {
                let path = e.path().map(relative).unwrap_or_default();
                let cause = e
                    .io_error()
                    .map_or_else(|| e.to_string(), ToString::to_string);
                listing
                    .unreadable
                    .push((path, format!("cannot list folder: {cause}")));
            }
        }
    }
    listing.objects.sort_by(|a, b| a.path.cmp(&b.path));
    listing.unreadable.sort();
    Ok(listing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::test_support::temp_store;

    #[tokio::test]
    async fn it_hashes_lists_and_refuses_escapes() {
        let (store, dir) = temp_store().await;
        let root = dir.path().join("archive");
        let archive = LocalArchive::new(&root, store);
        assert!(
            archive.list().await.unwrap().objects.is_empty(),
            "a missing root is empty"
        );

        std::fs::create_dir_all(root.join("2024/01/02/x")).unwrap();
        std::fs::write(root.join("2024/01/02/x/a.mp4"), b"abc").unwrap();
        std::fs::write(root.join("top"), b"").unwrap();
        std::fs::write(dir.path().join("outside"), b"secret").unwrap();
        let d = archive.digest("2024/01/02/x/a.mp4").await.unwrap();
        assert_eq!(d.size, 3);
        assert_eq!(
            d.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(matches!(
            archive.digest("2024/nope.mp4").await,
            Err(ReadError::NotFound)
        ));
        assert!(matches!(
            archive.digest("../outside").await,
            Err(ReadError::Refused(_))
        ));
        assert!(matches!(
            archive.digest("2024/01").await,
            Err(ReadError::Archive(ArchiveError::Io { .. }))
        ));

        std::os::unix::fs::symlink(dir.path(), root.join("loop")).unwrap();
        let listing = archive.list().await.unwrap();
        let paths: Vec<&str> = listing.objects.iter().map(|o| o.path.as_str()).collect();
        assert_eq!(paths, ["2024/01/02/x/a.mp4", "loop", "top"]);
        assert!(listing.unreadable.is_empty());
    }

    #[tokio::test]
    async fn the_database_is_a_companion_only_when_it_lives_under_the_root() {
        let (store, dir) = temp_store().await;
        let root = dir.path().join("archive");
        std::fs::create_dir_all(root.join("db")).unwrap();
        let archive = LocalArchive::new(&root, store);
        let under = archive.companions(&root.join("db/state.db"));
        assert!(under.contains("db/state.db") && under.contains("db/state.db-wal"));
        assert!(under.contains("db/state.db.lock") && under.contains("db/state.db-shm"));
        assert!(archive.companions(&dir.path().join("state.db")).is_empty());
    }
}
