//! Writing results all-or-nothing: every output path is checked before the computation starts,
//! every array goes to a temporary first, and the temporaries replace the outputs only once all
//! were written. What the path names is respected: a symbolic link stays a link (its target is
//! replaced), a FIFO or a device is written through, an existing file keeps its permissions and
//! its hard links.

use std::fs::{File, Metadata};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use ndarray::{ArrayBase, Data, Dimension};
use ndarray_npy::WriteNpyExt;

use crate::error::{Result, RnnError};

/// Links followed before giving up, as Linux's `MAXSYMLINKS`.
const MAX_LINK_HOPS: usize = 40;

/// One output of an [`OutputSet`], as [`OutputSet::add`] returned it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputSlot(usize);

/// Output files written as one transaction.
///
/// [`OutputSet::add`] checks each path when it is added (before any computation: its directory
/// exists and takes a new file, or the file can be opened for writing), [`OutputSet::write_npy_f32`]
/// writes each array to a temporary file, and [`OutputSet::commit`] puts them all in place.
/// Dropping the set without committing leaves every existing output as it was and removes the
/// temporaries.
///
/// How each path is written depends on what it names:
/// - a regular file, or nothing yet: a temporary beside it is renamed onto it, keeping the old
///   file's permissions. Through a symbolic link (or a chain of them) the link's final target is
///   replaced, so the link stays a link.
/// - a regular file with other hard links (Unix): written in place at commit, so that every name
///   still shows the new content. That write is not atomic: an error in the middle of it (a full
///   disk) leaves the file part-written, which is the price of keeping the links.
/// - anything else (a FIFO, a character device such as `/dev/null` or a terminal): opened and
///   written at commit, never replaced.
///
/// ```no_run
/// use ndarray::Array2;
/// use wgpu_rnn::OutputSet;
///
/// let mut outputs = OutputSet::new();
/// let y = outputs.add("y.npy")?;
/// let h = outputs.add("h.npy")?; // an unwritable path fails here, before any work
/// outputs.write_npy_f32(y, &Array2::<f32>::zeros((2, 3)))?;
/// outputs.write_npy_f32(h, &Array2::<f32>::zeros((2, 4)))?;
/// outputs.commit()?; // both files appear, or (on an error before this point) neither changes
/// # Ok::<(), wgpu_rnn::RnnError>(())
/// ```
#[derive(Debug, Default)]
pub struct OutputSet {
    outputs: Vec<Output>,
}

#[derive(Debug)]
struct Output {
    /// The path as the caller gave it, for messages.
    path: PathBuf,
    /// Where the bytes land: the link chain's end for `Replace`, the path itself otherwise.
    target: PathBuf,
    kind: Kind,
    written: bool,
}

#[derive(Debug)]
enum Kind {
    /// A temporary in the target's directory, renamed onto the target at commit.
    Replace(tempfile::NamedTempFile),
    /// The target opened for writing (not truncated) when added, and an anonymous temporary
    /// that holds the bytes until commit.
    InPlace { file: File, staged: File },
    /// A FIFO or device, opened only at commit (opening a FIFO blocks until a reader comes).
    Stream { staged: File },
}

impl OutputSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an output path and checks that it can be written, without changing anything there.
    ///
    /// # Errors
    /// [`RnnError::Io`] when the path is a directory, its directory does not exist or takes no
    /// new file, an existing file cannot be opened for writing, or a link chain is too long or
    /// circular; [`RnnError::InvalidOption`] when the set already has an output at the same place.
    pub fn add(&mut self, path: impl AsRef<Path>) -> Result<OutputSlot> {
        let path = path.as_ref();
        let io_error = |source| RnnError::Io {
            path: path.to_path_buf(),
            source,
        };
        let (target, kind) = match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {
                return Err(io_error(std::io::Error::new(
                    std::io::ErrorKind::IsADirectory,
                    "is a directory, not a file",
                )));
            }
            Ok(meta) if meta.is_file() => {
                let target = resolve_links(path).map_err(io_error)?;
                let kind = if hard_links(&meta) > 1 {
                    let file = std::fs::OpenOptions::new()
                        .write(true)
                        .open(&target)
                        .map_err(io_error)?;
                    Kind::InPlace {
                        file,
                        staged: tempfile::tempfile().map_err(io_error)?,
                    }
                } else {
                    Kind::Replace(temporary_beside(&target, Some(&meta)).map_err(io_error)?)
                };
                (target, kind)
            }
            Ok(_) => (
                path.to_path_buf(),
                Kind::Stream {
                    staged: tempfile::tempfile().map_err(io_error)?,
                },
            ),
            // Nothing there, or a dangling link: create the file where the chain ends, as a
            // shell's `>` would.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let target = resolve_links(path).map_err(io_error)?;
                let temp = temporary_beside(&target, None).map_err(io_error)?;
                (target, Kind::Replace(temp))
            }
            Err(e) => return Err(io_error(e)),
        };
        if let Some(other) = self.outputs.iter().find(|o| o.target == target) {
            return Err(RnnError::InvalidOption(format!(
                "{} and {} name the same file; each output needs its own",
                other.path.display(),
                path.display()
            )));
        }
        self.outputs.push(Output {
            path: path.to_path_buf(),
            target,
            kind,
            written: false,
        });
        Ok(OutputSlot(self.outputs.len() - 1))
    }

    /// Writes an array of float32 as `.npy` into the slot's temporary (the output itself changes
    /// only at [`OutputSet::commit`]). Writing a slot again replaces what it held.
    ///
    /// # Errors
    /// [`RnnError::Io`] when the temporary cannot be written (a full disk);
    /// [`RnnError::InvalidOption`] for a slot from another set.
    pub fn write_npy_f32<S, D>(&mut self, slot: OutputSlot, array: &ArrayBase<S, D>) -> Result<()>
    where
        S: Data<Elem = f32>,
        D: Dimension,
    {
        let output = self
            .outputs
            .get_mut(slot.0)
            .ok_or_else(|| RnnError::InvalidOption(format!("no output slot {}", slot.0)))?;
        let io_error = |source| RnnError::Io {
            path: output.path.clone(),
            source,
        };
        let file = match &mut output.kind {
            Kind::Replace(temp) => temp.as_file_mut(),
            Kind::InPlace { staged, .. } | Kind::Stream { staged } => staged,
        };
        file.set_len(0).map_err(io_error)?;
        file.seek(SeekFrom::Start(0)).map_err(io_error)?;
        let mut writer = BufWriter::new(&mut *file);
        array
            .as_standard_layout()
            .write_npy(&mut writer)
            .map_err(|e| io_error(std::io::Error::other(e)))?;
        writer.flush().map_err(io_error)?;
        drop(writer);
        // Synced now, so that commit is renames and copies of data already on disk.
        file.sync_all().map_err(io_error)?;
        output.written = true;
        Ok(())
    }

    /// Puts every output in place: renames the temporaries onto their files, then writes the
    /// hard-linked files in place and the FIFOs and devices through.
    ///
    /// Every byte was written and synced before this step, so only a rename, or a write to a
    /// hard-linked file or a stream, can still fail here; streams come last because what went
    /// into one cannot be taken back.
    ///
    /// # Errors
    /// [`RnnError::InvalidOption`] when an output was never written (nothing is changed then);
    /// [`RnnError::Io`] when a rename or a write fails.
    pub fn commit(self) -> Result<()> {
        if let Some(missing) = self.outputs.iter().find(|o| !o.written) {
            return Err(RnnError::InvalidOption(format!(
                "{} was never written",
                missing.path.display()
            )));
        }
        let (mut in_place, mut streams) = (Vec::new(), Vec::new());
        for output in self.outputs {
            match output.kind {
                Kind::Replace(temp) => {
                    temp.persist(&output.target).map_err(|e| RnnError::Io {
                        path: output.path.clone(),
                        source: e.error,
                    })?;
                }
                Kind::InPlace { file, staged } => in_place.push((output.path, file, staged)),
                Kind::Stream { staged } => {
                    let file = std::fs::OpenOptions::new()
                        .write(true)
                        .open(&output.target)
                        .map_err(|source| RnnError::Io {
                            path: output.path.clone(),
                            source,
                        })?;
                    streams.push((output.path, file, staged));
                }
            }
        }
        for (path, mut file, mut staged) in in_place.into_iter().chain(streams) {
            copy_into(&mut file, &mut staged).map_err(|source| RnnError::Io { path, source })?;
        }
        Ok(())
    }
}

/// Replaces `file`'s content with `staged`'s. Truncating a FIFO or device is refused by some
/// systems and means nothing, so only regular files are truncated.
fn copy_into(file: &mut File, staged: &mut File) -> std::io::Result<()> {
    if file.metadata()?.is_file() {
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
    }
    staged.seek(SeekFrom::Start(0))?;
    std::io::copy(staged, file)?;
    file.flush()?;
    if file.metadata()?.is_file() {
        file.sync_all()?;
    }
    Ok(())
}

/// Writes an array of float32 as a `.npy` file: an [`OutputSet`] of one.
///
/// A failed write (a full disk, say) leaves any earlier file at `path` as it was; a symbolic link
/// stays a link, a FIFO or device is written through, an existing file keeps its permissions.
///
/// # Errors
/// [`RnnError::Io`] when the file cannot be created, written or moved into place.
pub fn write_npy_f32<S, D>(path: impl AsRef<Path>, array: &ArrayBase<S, D>) -> Result<()>
where
    S: Data<Elem = f32>,
    D: Dimension,
{
    let mut set = OutputSet::new();
    let slot = set.add(path)?;
    set.write_npy_f32(slot, array)?;
    set.commit()
}

/// Follows the symbolic links that `path` itself is (its directories need no following: a rename
/// goes through them), to the path of the file that the chain ends at, existing or not.
fn resolve_links(path: &Path) -> std::io::Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_LINK_HOPS {
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let next = std::fs::read_link(&current)?;
                current = match current.parent() {
                    Some(parent) if next.is_relative() => parent.join(next),
                    _ => next,
                };
            }
            Ok(_) => return Ok(current),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(current),
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other(format!(
        "more than {MAX_LINK_HOPS} symbolic links (a loop?)"
    )))
}

/// A temporary file in `target`'s directory (so that the rename stays on one file system), with
/// the permissions of the file it will replace, or those a new file would get.
fn temporary_beside(
    target: &Path,
    existing: Option<&Metadata>,
) -> std::io::Result<tempfile::NamedTempFile> {
    let dir = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".wgpu-rnn-").suffix(".npy.tmp");
    // The umask then applies, as it would to a file created in place (tempfile's default is 0600).
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let temp = builder.tempfile_in(dir)?;
    if let Some(meta) = existing {
        temp.as_file().set_permissions(meta.permissions())?;
    }
    Ok(temp)
}

#[cfg(unix)]
fn hard_links(meta: &Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::nlink(meta)
}

/// Windows has hard links too, but no portable count in std; there the file is replaced.
#[cfg(not(unix))]
fn hard_links(_meta: &Metadata) -> u64 {
    1
}
