//! Reading and writing little-endian f32 `.npy` arrays in C order (DESIGN.md section 7).
//!
//! The format is small enough to parse here, and parsing it here lets a hostile file fail
//! cleanly: the header is checked field by field, the shape's size is computed with
//! overflow checks, and the data length is compared with the header before anything is
//! allocated. (The `npyz` crate panics on a shape whose size overflows.)

use std::io::Read;
use std::path::{Path, PathBuf};

/// An f32 array with its shape (C order).
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Elements in C order.
    pub data: Vec<f32>,
}

/// A `.npy` file that could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct NpyError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

impl NpyError {
    fn new(path: &Path, reason: impl Into<String>) -> Self {
        Self {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

const MAGIC: &[u8] = b"\x93NUMPY";

/// Largest `.npy` file [`read`] accepts: 2 GiB (half a billion f32 values).
pub const MAX_FILE_BYTES: u64 = 2 << 30;

/// Largest header [`read`] accepts (numpy writes a few hundred bytes).
const MAX_HEADER_BYTES: usize = 1 << 20;

/// Reads an f32 array from `path`: a regular file of at most [`MAX_FILE_BYTES`], whose
/// header is read and checked first; the data is read only when the file holds exactly
/// the bytes the header promises.
pub fn read(path: &Path) -> Result<Array, NpyError> {
    let error = |reason: String| NpyError::new(path, reason);
    let (mut file, len) =
        crate::read::open_regular(path, MAX_FILE_BYTES).map_err(|e| error(e.reason))?;
    let mut take = |n: usize, into: &mut Vec<u8>| {
        let at = into.len();
        into.resize(at + n, 0);
        file.read_exact(&mut into[at..])
            .map_err(|_| error(truncated()))
    };
    // Magic and version, the header-length field, then the header itself.
    let mut head = Vec::new();
    take(8, &mut head)?;
    let field = length_bytes(&head).map_err(error)?;
    take(field, &mut head)?;
    let header_len = header_length(&head).map_err(error)?;
    if header_len > MAX_HEADER_BYTES {
        return Err(error(format!(
            "header of {header_len} bytes; a .npy header is at most {MAX_HEADER_BYTES}"
        )));
    }
    take(header_len, &mut head)?;
    let layout = layout(&head).map_err(error)?;
    let held = len.saturating_sub(layout.start as u64);
    if held != layout.numel as u64 * 4 {
        return Err(error(size_mismatch(&layout.shape, layout.numel, held)));
    }
    let data =
        crate::read::read_exactly_up_to(file, path, held, held).map_err(|e| error(e.reason))?;
    if data.len() as u64 != held {
        return Err(error(size_mismatch(
            &layout.shape,
            layout.numel,
            data.len() as u64,
        )));
    }
    Ok(Array {
        shape: layout.shape,
        data: floats(&data),
    })
}

/// Parses the bytes of a `.npy` file holding a little-endian f32 array in C order.
pub fn parse(bytes: &[u8]) -> Result<Array, String> {
    let layout = layout(bytes)?;
    let data = &bytes[layout.start..];
    if data.len() != layout.numel * 4 {
        return Err(size_mismatch(
            &layout.shape,
            layout.numel,
            data.len() as u64,
        ));
    }
    Ok(Array {
        shape: layout.shape,
        data: floats(data),
    })
}

/// Where the data of a `.npy` file starts and what shape it has.
struct Layout {
    shape: Vec<usize>,
    numel: usize,
    start: usize,
}

fn truncated() -> String {
    "not a valid .npy file (truncated header)".to_string()
}

/// Bytes of the header-length field (after the magic and the version).
fn length_bytes(bytes: &[u8]) -> Result<usize, String> {
    if !bytes.starts_with(MAGIC) {
        return Err("not a .npy file (missing the \\x93NUMPY magic)".into());
    }
    match bytes.get(6) {
        Some(1) => Ok(2),
        Some(2 | 3) => Ok(4),
        Some(v) => Err(format!("unsupported .npy format version {v}")),
        None => Err(truncated()),
    }
}

/// The header length the file's first bytes declare.
fn header_length(bytes: &[u8]) -> Result<usize, String> {
    let len_bytes = length_bytes(bytes)?;
    let field = bytes.get(8..8 + len_bytes).ok_or_else(truncated)?;
    Ok(field
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | b as usize))
}

/// The layout of a `.npy` file from its first bytes (at least the whole header).
fn layout(bytes: &[u8]) -> Result<Layout, String> {
    let header_len = header_length(bytes)?;
    let start = 8 + length_bytes(bytes)?;
    let end = start.checked_add(header_len).ok_or_else(truncated)?;
    let header = bytes.get(start..end).ok_or_else(truncated)?;
    let header = std::str::from_utf8(header).map_err(|_| "header is not text".to_string())?;
    let fields =
        Header::parse(header).map_err(|e| format!("malformed header `{}`: {e}", header.trim()))?;
    if fields.descr != "<f4" {
        return Err(format!(
            "dtype '{}' is not supported; expected little-endian float32 '<f4'",
            fields.descr
        ));
    }
    if fields.fortran_order {
        return Err("Fortran-order arrays are not supported; save with C order".into());
    }
    let shape = fields.shape;
    let numel = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|n| n.checked_mul(4).is_some())
        .ok_or_else(|| format!("shape {shape:?} is too large"))?;
    Ok(Layout {
        shape,
        numel,
        start: end,
    })
}

fn size_mismatch(shape: &[usize], numel: usize, held: u64) -> String {
    let want = numel as u64 * 4;
    format!(
        "header says shape {shape:?} ({want} bytes of data) but the file holds {held} bytes of data{}",
        if held < want { " (truncated?)" } else { "" }
    )
}

fn floats(data: &[u8]) -> Vec<f32> {
    data.chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// The three fields of a `.npy` header dictionary.
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

impl Header {
    /// Parses `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`.
    fn parse(text: &str) -> Result<Self, String> {
        let body = text
            .trim()
            .strip_prefix('{')
            .and_then(|t| t.strip_suffix('}'))
            .ok_or("not a dict")?;
        let (mut descr, mut fortran_order, mut shape) = (None, None, None);
        let mut rest = body.trim_start();
        while !rest.is_empty() {
            let (key, after) = quoted(rest)?;
            rest = after
                .trim_start()
                .strip_prefix(':')
                .ok_or("expected `:` after a key")?
                .trim_start();
            match key {
                "descr" => {
                    let (value, after) = quoted(rest)?;
                    descr = Some(value.to_string());
                    rest = after;
                }
                "fortran_order" => {
                    let (value, after) = if let Some(a) = rest.strip_prefix("True") {
                        (true, a)
                    } else if let Some(a) = rest.strip_prefix("False") {
                        (false, a)
                    } else {
                        return Err("fortran_order must be True or False".into());
                    };
                    fortran_order = Some(value);
                    rest = after;
                }
                "shape" => {
                    let inner = rest.strip_prefix('(').ok_or("shape must be a tuple")?;
                    let close = inner.find(')').ok_or("unclosed shape tuple")?;
                    let dims = inner[..close]
                        .split(',')
                        .map(str::trim)
                        .filter(|d| !d.is_empty())
                        .map(|d| {
                            d.parse::<usize>()
                                .map_err(|_| format!("`{d}` is not a dimension"))
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    shape = Some(dims);
                    rest = &inner[close + 1..];
                }
                other => return Err(format!("unexpected key `{other}`")),
            }
            rest = rest.trim_start();
            rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
        }
        Ok(Self {
            descr: descr.ok_or("no descr")?,
            fortran_order: fortran_order.ok_or("no fortran_order")?,
            shape: shape.ok_or("no shape")?,
        })
    }
}

/// Splits a `'quoted'` (or `"quoted"`) string off the front of `text`.
fn quoted(text: &str) -> Result<(&str, &str), String> {
    let quote = text
        .chars()
        .next()
        .filter(|c| *c == '\'' || *c == '"')
        .ok_or("expected a quoted string")?;
    let inner = &text[1..];
    let end = inner.find(quote).ok_or("unterminated string")?;
    Ok((&inner[..end], &inner[end + 1..]))
}

/// The bytes of a `.npy` file (format 1.0) holding `data` with `shape`.
pub fn to_bytes(shape: &[usize], data: &[f32]) -> Result<Vec<u8>, String> {
    let numel: usize = shape.iter().product();
    if numel != data.len() {
        return Err(format!(
            "shape {shape:?} needs {numel} values, got {}",
            data.len()
        ));
    }
    let dims: Vec<String> = shape.iter().map(ToString::to_string).collect();
    let tuple = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {tuple}, }}");
    // Pad with spaces so that the data starts on a 64-byte boundary, then a newline.
    let unpadded = MAGIC.len() + 2 + 2 + header.len() + 1;
    header.extend(std::iter::repeat_n(
        ' ',
        unpadded.next_multiple_of(64) - unpadded,
    ));
    header.push('\n');
    let header_len = u16::try_from(header.len())
        .map_err(|_| format!("shape {shape:?} has too many dimensions"))?;
    let mut bytes = Vec::with_capacity(MAGIC.len() + 4 + header.len() + data.len() * 4);
    bytes.extend(MAGIC);
    bytes.extend([1, 0]);
    bytes.extend(header_len.to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(data.iter().flat_map(|v| v.to_le_bytes()));
    Ok(bytes)
}

/// Writes `data` with `shape` to `path` (replacing it).
///
/// The bytes go to a temporary file beside `path` that is then renamed over it, so a
/// reader (or a process killed half-way) sees the old file or the whole new one.
pub fn write(path: &Path, shape: &[usize], data: &[f32]) -> Result<(), NpyError> {
    let bytes = to_bytes(shape, data).map_err(|reason| NpyError::new(path, reason))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let failed = |e: std::io::Error| NpyError::new(path, format!("cannot write: {e}"));
    std::fs::write(&tmp, bytes).map_err(failed)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        failed(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let data = vec![1.5f32, -2.0, 0.25, 3.0, 1e-8, f32::MAX];
        let bytes = to_bytes(&[2, 3], &data).unwrap();
        assert_eq!(&bytes[..6], b"\x93NUMPY");
        assert_eq!(
            parse(&bytes).unwrap(),
            Array {
                shape: vec![2, 3],
                data
            }
        );
    }

    #[test]
    fn reads_numpy_written_header() {
        // np.save of np.arange(3, dtype='<f4').reshape(1, 3), version 1.0.
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        let mut header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3), }".to_string();
        while !(10 + header.len() + 1).is_multiple_of(64) {
            header.push(' ');
        }
        header.push('\n');
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header.as_bytes());
        for v in [0.0f32, 1.0, 2.0] {
            bytes.extend(v.to_le_bytes());
        }
        assert_eq!(
            parse(&bytes).unwrap(),
            Array {
                shape: vec![1, 3],
                data: vec![0.0, 1.0, 2.0]
            }
        );
    }

    #[test]
    fn malformed_files_are_explained() {
        let good = to_bytes(&[4], &[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert!(
            parse(&good[..good.len() - 2])
                .unwrap_err()
                .contains("truncated")
        );
        assert!(parse(b"hello").unwrap_err().contains("not a .npy file"));
        assert!(parse(&good[..20]).unwrap_err().contains("truncated header"));
        let header_edit = |from: &str, to: &str| {
            // Rebuild the file with an edited header text (v1.0: 2-byte length at 8..10).
            let len = u16::from_le_bytes([good[8], good[9]]) as usize;
            let text = std::str::from_utf8(&good[10..10 + len])
                .unwrap()
                .replace(from, to);
            let mut out = good[..8].to_vec();
            out.extend((text.len() as u16).to_le_bytes());
            out.extend(text.as_bytes());
            out.extend(&good[10 + len..]);
            out
        };
        assert!(
            parse(&header_edit("<f4", "<f8"))
                .unwrap_err()
                .contains("'<f8'")
        );
        assert!(
            parse(&header_edit("False", "True"))
                .unwrap_err()
                .contains("Fortran")
        );
        let huge = parse(&header_edit("(4,)", "(99999999999999999, 99999999)")).unwrap_err();
        assert!(huge.contains("too large"), "{huge}");
        let big = parse(&header_edit("(4,)", "(100000, 100000)")).unwrap_err();
        assert!(big.contains("truncated"), "{big}");
    }
}
