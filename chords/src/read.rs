//! Bounded file reading: every file chords reads goes through [`open_regular`] and
//! [`read_file`], so memory and time stay bounded whatever a path points to.
//!
//! A path is opened without blocking (a FIFO or a device never stalls the open), checked on
//! the opened handle to be a regular file (not a directory, a device such as `/dev/zero`, a
//! pipe or a socket), and read up to a stated maximum; a file longer than that, or one that
//! grows past it while being read, is refused with one line naming it.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A file that could not be read within its bounds.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct ReadError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub reason: String,
}

impl ReadError {
    /// An error about `path`.
    pub fn new(path: &Path, reason: impl Into<String>) -> Self {
        Self {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// Opens `path` for reading if it is a regular file of at most `max_bytes`; returns the file
/// and its length.
///
/// ```
/// let dir = std::env::temp_dir();
/// let e = chords::read::open_regular(&dir, 1 << 20).unwrap_err();
/// assert!(e.to_string().contains("not a regular file"));
/// ```
pub fn open_regular(path: &Path, max_bytes: u64) -> Result<(File, u64), ReadError> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting.
        options.custom_flags(0o4000);
    }
    let file = options
        .open(path)
        .map_err(|e| ReadError::new(path, format!("cannot open: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| ReadError::new(path, format!("cannot inspect: {e}")))?;
    if !meta.is_file() {
        let kind = if meta.is_dir() {
            "a directory"
        } else {
            kind_of_special(&meta)
        };
        return Err(ReadError::new(
            path,
            format!("is not a regular file ({kind})"),
        ));
    }
    if meta.len() > max_bytes {
        return Err(ReadError::new(
            path,
            format!(
                "is {} bytes, more than the {max_bytes} such a file may hold",
                meta.len()
            ),
        ));
    }
    Ok((file, meta.len()))
}

#[cfg(unix)]
fn kind_of_special(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_fifo() {
        "a pipe"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a plain file"
    }
}

#[cfg(not(unix))]
fn kind_of_special(_meta: &std::fs::Metadata) -> &'static str {
    "not a plain file"
}

/// The whole of a regular file of at most `max_bytes`.
///
/// ```
/// let path = std::env::temp_dir().join("chords-read-doc.txt");
/// std::fs::write(&path, "12345").unwrap();
/// assert_eq!(chords::read::read_file(&path, 5).unwrap(), b"12345");
/// assert!(chords::read::read_file(&path, 4).unwrap_err().to_string().contains("more than the 4"));
/// ```
pub fn read_file(path: &Path, max_bytes: u64) -> Result<Vec<u8>, ReadError> {
    let (file, len) = open_regular(path, max_bytes)?;
    read_exactly_up_to(file, path, len, max_bytes)
}

/// A regular file of at most `max_bytes` as UTF-8 text.
pub fn read_text(path: &Path, max_bytes: u64) -> Result<String, ReadError> {
    String::from_utf8(read_file(path, max_bytes)?)
        .map_err(|_| ReadError::new(path, "is not UTF-8 text"))
}

/// Reads what is left of `file` (expected `len` bytes), refusing more than `max_bytes`.
pub(crate) fn read_exactly_up_to(
    file: File,
    path: &Path,
    len: u64,
    max_bytes: u64,
) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| ReadError::new(path, format!("cannot read: {e}")))?;
    if bytes.len() as u64 > max_bytes {
        return Err(ReadError::new(
            path,
            format!("grew past {max_bytes} bytes while being read"),
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn devices_are_refused_without_reading() {
        let e = read_file(Path::new("/dev/zero"), 1 << 30).unwrap_err();
        assert!(e.to_string().contains("a device"), "{e}");
    }

    #[test]
    fn missing_files_name_themselves() {
        let e = read_file(Path::new("/nonexistent/chords-file"), 10).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/chords-file: cannot open"),
            "{e}"
        );
    }
}
