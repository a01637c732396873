//! Reading and writing little-endian f32 `.npy` arrays in C order (DESIGN.md section 7).
//!
//! The format is small enough to parse here, and parsing it here lets a hostile file fail
//! cleanly: the header is checked field by field, the shape's size is computed with
//! overflow checks, and the data length is compared with the header before anything is
//! allocated. (The `npyz` crate panics on a shape whose size overflows.)

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

/// Reads an f32 array from `path`.
pub fn read(path: &Path) -> Result<Array, NpyError> {
    let bytes =
        std::fs::read(path).map_err(|e| NpyError::new(path, format!("cannot read: {e}")))?;
    parse(&bytes).map_err(|reason| NpyError::new(path, reason))
}

/// Parses the bytes of a `.npy` file holding a little-endian f32 array in C order.
pub fn parse(bytes: &[u8]) -> Result<Array, String> {
    if !bytes.starts_with(MAGIC) {
        return Err("not a .npy file (missing the \\x93NUMPY magic)".into());
    }
    let truncated = || "not a valid .npy file (truncated header)".to_string();
    let len_bytes = match bytes.get(6) {
        Some(1) => 2,
        Some(2 | 3) => 4,
        Some(v) => return Err(format!("unsupported .npy format version {v}")),
        None => return Err(truncated()),
    };
    let len_field = bytes.get(8..8 + len_bytes).ok_or_else(truncated)?;
    let header_len = len_field
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | b as usize);
    let start = 8 + len_bytes;
    let header = bytes.get(start..start + header_len).ok_or_else(truncated)?;
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
    let data = &bytes[start + header_len..];
    if data.len() != numel * 4 {
        return Err(format!(
            "header says shape {shape:?} ({} bytes of data) but the file holds {} bytes of data{}",
            numel * 4,
            data.len(),
            if data.len() < numel * 4 {
                " (truncated?)"
            } else {
                ""
            }
        ));
    }
    let data = data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(Array { shape, data })
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
pub fn write(path: &Path, shape: &[usize], data: &[f32]) -> Result<(), NpyError> {
    let bytes = to_bytes(shape, data).map_err(|reason| NpyError::new(path, reason))?;
    std::fs::write(path, bytes).map_err(|e| NpyError::new(path, format!("cannot write: {e}")))
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
