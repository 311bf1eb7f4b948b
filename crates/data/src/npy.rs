//! A strict reader and an atomic writer for `.npy` arrays.
//!
//! Why not a crate: inputs are user files and must never panic or allocate what the header
//! merely claims. This reader checks the header against the file size before it allocates,
//! accepts the dtypes a video can reasonably be in (floats and integers, either byte order,
//! C or Fortran order), and converts everything to `f32` in one pass. It is fuzzed.

use std::io::Read;

/// Element types we read, with their byte order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    F64,
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::U8 | DType::I8 => 1,
            DType::U16 | DType::I16 => 2,
            DType::F32 | DType::U32 | DType::I32 => 4,
            DType::F64 | DType::U64 | DType::I64 => 8,
        }
    }
}

/// What a header says, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyHeader {
    pub dtype: DType,
    pub big_endian: bool,
    pub fortran_order: bool,
    pub shape: Vec<usize>,
    /// Offset of the first data byte.
    pub data_offset: usize,
    pub descr: String,
}

impl NpyHeader {
    /// Number of elements, or `None` if the product overflows.
    pub fn len(&self) -> Option<usize> {
        self.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }
}

/// Why an `.npy` could not be read. Messages are complete sentences for the user.
#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum NpyError {
    #[error("not an .npy file (missing the \\x93NUMPY magic)")]
    NotNpy,
    #[error("unsupported .npy format version {0}.{1}")]
    Version(u8, u8),
    #[error("file is truncated inside the header ({0} bytes)")]
    TruncatedHeader(usize),
    #[error("malformed .npy header: {0}")]
    Header(String),
    #[error("unsupported dtype '{0}': expected a real float or integer type such as '<f4'")]
    DType(String),
    #[error("declared shape {0:?} is too large to address")]
    ShapeOverflow(Vec<usize>),
    #[error(
        "header declares shape {shape:?} of {dtype} ({want} data bytes) but the file holds {got} data bytes"
    )]
    SizeMismatch {
        shape: Vec<usize>,
        dtype: String,
        want: u128,
        got: u64,
    },
    #[error("{0}")]
    Io(String),
}

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Parse the header from the first bytes of a file (`bytes` may be the whole file).
pub fn parse_header(bytes: &[u8]) -> Result<NpyHeader, NpyError> {
    if bytes.len() < 8 || &bytes[..6] != MAGIC {
        if bytes.len() < 8 && MAGIC.starts_with(&bytes[..bytes.len().min(6)]) && !bytes.is_empty() {
            return Err(NpyError::TruncatedHeader(bytes.len()));
        }
        return Err(NpyError::NotNpy);
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (hlen, start): (usize, usize) = match major {
        1 => {
            if bytes.len() < 10 {
                return Err(NpyError::TruncatedHeader(bytes.len()));
            }
            (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
        }
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(NpyError::TruncatedHeader(bytes.len()));
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        _ => return Err(NpyError::Version(major, minor)),
    };
    let end = start
        .checked_add(hlen)
        .ok_or(NpyError::TruncatedHeader(bytes.len()))?;
    if bytes.len() < end {
        return Err(NpyError::TruncatedHeader(bytes.len()));
    }
    let text = std::str::from_utf8(&bytes[start..end])
        .map_err(|_| NpyError::Header("header is not valid text".into()))?;
    let dict = parse_dict(text).map_err(NpyError::Header)?;
    let mut descr = None;
    let mut fortran = None;
    let mut shape = None;
    for (k, v) in dict {
        match (k.as_str(), v) {
            ("descr", Lit::Str(s)) => descr = Some(s),
            ("fortran_order", Lit::Bool(b)) => fortran = Some(b),
            ("shape", Lit::Tuple(t)) => shape = Some(t),
            ("descr", _) => return Err(NpyError::DType("<structured or non-string descr>".into())),
            (k @ ("fortran_order" | "shape"), _) => {
                return Err(NpyError::Header(format!("key '{k}' has the wrong type")));
            }
            _ => {}
        }
    }
    let descr = descr.ok_or_else(|| NpyError::Header("missing key 'descr'".into()))?;
    let fortran_order =
        fortran.ok_or_else(|| NpyError::Header("missing key 'fortran_order'".into()))?;
    let shape = shape.ok_or_else(|| NpyError::Header("missing key 'shape'".into()))?;
    let (dtype, big_endian) = parse_descr(&descr)?;
    let h = NpyHeader {
        dtype,
        big_endian,
        fortran_order,
        shape,
        data_offset: end,
        descr,
    };
    if h.len().and_then(|n| n.checked_mul(dtype.size())).is_none() {
        return Err(NpyError::ShapeOverflow(h.shape));
    }
    Ok(h)
}

fn parse_descr(d: &str) -> Result<(DType, bool), NpyError> {
    let bad = || NpyError::DType(d.to_string());
    let (order, code) = match d.chars().next() {
        Some(c @ ('<' | '>' | '|' | '=')) => (c, &d[1..]),
        _ => ('=', d),
    };
    let dtype = match code {
        "f4" => DType::F32,
        "f8" => DType::F64,
        "u1" | "B" => DType::U8,
        "i1" | "b" => DType::I8,
        "u2" => DType::U16,
        "i2" => DType::I16,
        "u4" => DType::U32,
        "i4" => DType::I32,
        "u8" => DType::U64,
        "i8" => DType::I64,
        _ => return Err(bad()),
    };
    let big = match order {
        '>' => true,
        '<' | '|' => false,
        _ => cfg!(target_endian = "big"),
    };
    Ok((dtype, big))
}

#[derive(Debug)]
enum Lit {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
    Other,
}

/// Parse the Python dict literal of an npy header: string keys, and values that are strings,
/// booleans, tuples of non-negative integers, or anything else (kept as `Other`).
fn parse_dict(s: &str) -> Result<Vec<(String, Lit)>, String> {
    let b = s.as_bytes();
    let mut i = 0;
    let ws = |i: &mut usize| {
        while *i < b.len() && (b[*i] as char).is_ascii_whitespace() {
            *i += 1;
        }
    };
    let expect = |i: &mut usize, c: u8| -> Result<(), String> {
        ws(i);
        if *i < b.len() && b[*i] == c {
            *i += 1;
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", c as char, *i))
        }
    };
    let string = |i: &mut usize| -> Result<String, String> {
        ws(i);
        let q = *b.get(*i).ok_or("unexpected end of header")?;
        if q != b'\'' && q != b'"' {
            return Err(format!("expected a quoted string at byte {}", *i));
        }
        let start = *i + 1;
        let mut j = start;
        while j < b.len() && b[j] != q {
            j += 1;
        }
        if j >= b.len() {
            return Err("unterminated string".into());
        }
        *i = j + 1;
        Ok(s[start..j].to_string())
    };
    expect(&mut i, b'{')?;
    let mut out = Vec::new();
    loop {
        ws(&mut i);
        if i < b.len() && b[i] == b'}' {
            i += 1;
            break;
        }
        let key = string(&mut i)?;
        expect(&mut i, b':')?;
        ws(&mut i);
        let v = match b.get(i) {
            Some(b'\'') | Some(b'"') => Lit::Str(string(&mut i)?),
            Some(b'(') => {
                i += 1;
                let mut dims = Vec::new();
                loop {
                    ws(&mut i);
                    match b.get(i) {
                        Some(b')') => {
                            i += 1;
                            break;
                        }
                        Some(c) if c.is_ascii_digit() => {
                            let st = i;
                            while i < b.len() && b[i].is_ascii_digit() {
                                i += 1;
                            }
                            let d: usize = s[st..i]
                                .parse()
                                .map_err(|_| format!("shape entry '{}' is too large", &s[st..i]))?;
                            // numpy writes 3L on some old Pythons.
                            if i < b.len() && b[i] == b'L' {
                                i += 1;
                            }
                            dims.push(d);
                            ws(&mut i);
                            match b.get(i) {
                                Some(b',') => i += 1,
                                Some(b')') => {}
                                _ => return Err(format!("malformed shape tuple at byte {i}")),
                            }
                        }
                        _ => {
                            return Err(format!(
                                "shape must be a tuple of non-negative integers (byte {i})"
                            ));
                        }
                    }
                }
                Lit::Tuple(dims)
            }
            _ => {
                let st = i;
                // A bare word or a nested structure we do not interpret: skip to the next
                // top-level comma or the closing brace.
                let mut depth = 0i32;
                while i < b.len() {
                    match b[i] {
                        b'[' | b'(' | b'{' => depth += 1,
                        b']' | b')' => depth -= 1,
                        b'}' if depth == 0 => break,
                        b'}' => depth -= 1,
                        b',' if depth == 0 => break,
                        _ => {}
                    }
                    i += 1;
                }
                match s[st..i].trim() {
                    "True" => Lit::Bool(true),
                    "False" => Lit::Bool(false),
                    "" => return Err(format!("missing value for key '{key}'")),
                    _ => Lit::Other,
                }
            }
        };
        out.push((key, v));
        ws(&mut i);
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => {}
            _ => return Err(format!("expected ',' or '}}' at byte {i}")),
        }
    }
    ws(&mut i);
    if i != b.len() {
        return Err(format!("unexpected text after the header dict at byte {i}"));
    }
    Ok(out)
}

/// A decoded array: shape and data as `f32` in C order.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
    /// The dtype as stored, e.g. `<f4`.
    pub descr: String,
}

/// Decode a whole `.npy` file held in memory.
pub fn decode(bytes: &[u8]) -> Result<Array, NpyError> {
    let h = parse_header(bytes)?;
    let n = h
        .len()
        .ok_or_else(|| NpyError::ShapeOverflow(h.shape.clone()))?;
    let want = n as u128 * h.dtype.size() as u128;
    let got = (bytes.len() - h.data_offset) as u64;
    if want != got as u128 {
        return Err(NpyError::SizeMismatch {
            shape: h.shape,
            dtype: h.descr,
            want,
            got,
        });
    }
    let raw = &bytes[h.data_offset..];
    let sz = h.dtype.size();
    let be = h.big_endian;
    macro_rules! conv {
        ($t:ty, $n:expr) => {
            raw.chunks_exact($n)
                .map(|c| {
                    let a: [u8; $n] = c.try_into().unwrap_or([0; $n]);
                    (if be {
                        <$t>::from_be_bytes(a)
                    } else {
                        <$t>::from_le_bytes(a)
                    }) as f32
                })
                .collect::<Vec<f32>>()
        };
    }
    let mut data = match h.dtype {
        DType::F32 => conv!(f32, 4),
        DType::F64 => conv!(f64, 8),
        DType::U8 => raw.iter().map(|&x| x as f32).collect(),
        DType::I8 => raw.iter().map(|&x| x as i8 as f32).collect(),
        DType::U16 => conv!(u16, 2),
        DType::I16 => conv!(i16, 2),
        DType::U32 => conv!(u32, 4),
        DType::I32 => conv!(i32, 4),
        DType::U64 => conv!(u64, 8),
        DType::I64 => conv!(i64, 8),
    };
    debug_assert_eq!(data.len() * sz, raw.len());
    if h.fortran_order && h.shape.len() > 1 {
        data = fortran_to_c(&data, &h.shape);
    }
    Ok(Array {
        shape: h.shape,
        data,
        descr: h.descr,
    })
}

/// Reorder a column-major array into row-major.
fn fortran_to_c(data: &[f32], shape: &[usize]) -> Vec<f32> {
    let nd = shape.len();
    let mut out = vec![0f32; data.len()];
    let mut idx = vec![0usize; nd];
    // Fortran strides.
    let mut fstride = vec![1usize; nd];
    for k in 1..nd {
        fstride[k] = fstride[k - 1] * shape[k - 1];
    }
    for o in out.iter_mut() {
        let f: usize = idx.iter().zip(&fstride).map(|(i, s)| i * s).sum();
        *o = data[f];
        for k in (0..nd).rev() {
            idx[k] += 1;
            if idx[k] < shape[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    out
}

/// Read and decode an `.npy` file, checking the declared size against the file size before
/// reading the data (a header cannot make us allocate more than the file holds).
pub fn read_npy(path: &std::path::Path) -> Result<Array, NpyError> {
    let io = |e: std::io::Error| NpyError::Io(e.to_string());
    let mut f = std::fs::File::open(path).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    let mut head = vec![0u8; len.min(65_536 + 12) as usize];
    f.read_exact(&mut head).map_err(io)?;
    let h = parse_header(&head)?;
    let n = h
        .len()
        .ok_or_else(|| NpyError::ShapeOverflow(h.shape.clone()))?;
    let want = n as u128 * h.dtype.size() as u128;
    let got = len - h.data_offset as u64;
    if want != got as u128 {
        return Err(NpyError::SizeMismatch {
            shape: h.shape,
            dtype: h.descr,
            want,
            got,
        });
    }
    let mut bytes = head;
    bytes.reserve_exact((len as usize).saturating_sub(bytes.len()));
    f.read_to_end(&mut bytes).map_err(io)?;
    decode(&bytes)
}

/// The `.npy` version 1.0 header (magic to newline) of a little-endian `f32` C-order array.
pub fn header_f32(shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_txt = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_txt}, }}");
    // Pad so the data starts on a 64-byte boundary; the header ends with '\n'.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out
}

/// Size in bytes of the `.npy` file [`encode_f32`] writes for `shape`.
pub fn encoded_len_f32(shape: &[usize]) -> usize {
    header_f32(shape).len() + 4 * shape.iter().product::<usize>()
}

/// Encode an `f32` C-order array as `.npy` version 1.0 bytes.
pub fn encode_f32(shape: &[usize], data: &[f32]) -> Vec<u8> {
    assert_eq!(shape.iter().product::<usize>(), data.len());
    let mut out = header_f32(shape);
    out.reserve_exact(4 * data.len());
    for x in data {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_header(h: &str, data: &[u8]) -> Vec<u8> {
        let mut v = MAGIC.to_vec();
        v.extend_from_slice(&[1, 0]);
        v.extend_from_slice(&(h.len() as u16).to_le_bytes());
        v.extend_from_slice(h.as_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn roundtrip_f32() {
        let data: Vec<f32> = (0..24).map(|x| x as f32 * 0.5).collect();
        let bytes = encode_f32(&[2, 3, 4], &data);
        assert_eq!((bytes.len() - 4 * 24) % 64, 0);
        let a = decode(&bytes).unwrap();
        assert_eq!(a.shape, vec![2, 3, 4]);
        assert_eq!(a.data, data);
    }

    #[test]
    fn reads_other_dtypes_and_orders() {
        let vals = [1.5f64, -2.0, 3.25, 4.0, 5.0, 6.0];
        let le: Vec<u8> = vals.iter().flat_map(|x| x.to_le_bytes()).collect();
        let a = decode(&with_header(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }\n",
            &le,
        ))
        .unwrap();
        assert_eq!(a.data, vec![1.5, -2.0, 3.25, 4.0, 5.0, 6.0]);
        let be: Vec<u8> = vals.iter().flat_map(|x| x.to_be_bytes()).collect();
        let a = decode(&with_header(
            "{'descr': '>f8', 'fortran_order': False, 'shape': (2, 3)}",
            &be,
        ))
        .unwrap();
        assert_eq!(a.data[2], 3.25);
        // Fortran order: stored column-major, returned row-major.
        let a = decode(&with_header(
            "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }",
            &le,
        ))
        .unwrap();
        assert_eq!(a.data, vec![1.5, 3.25, 5.0, -2.0, 4.0, 6.0]);
        let a = decode(&with_header(
            "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }",
            &[0, 128, 255],
        ))
        .unwrap();
        assert_eq!(a.data, vec![0.0, 128.0, 255.0]);
    }

    #[test]
    fn rejects_bad_files_with_reasons() {
        assert_eq!(decode(b"hello world"), Err(NpyError::NotNpy));
        assert_eq!(decode(b""), Err(NpyError::NotNpy));
        assert!(matches!(
            decode(b"\x93NUMP"),
            Err(NpyError::TruncatedHeader(_))
        ));
        assert!(matches!(
            decode(&with_header(
                "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }",
                &[0; 8]
            )),
            Err(NpyError::DType(_))
        ));
        assert!(matches!(
            decode(&with_header(
                "{'descr': '<U4', 'fortran_order': False, 'shape': (1,), }",
                &[0; 16]
            )),
            Err(NpyError::DType(_))
        ));
        assert!(matches!(
            decode(&with_header(
                "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }",
                &[0; 4]
            )),
            Err(NpyError::DType(_))
        ));
        // Truncated data.
        assert!(matches!(
            decode(&with_header(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }",
                &[0; 12]
            )),
            Err(NpyError::SizeMismatch { .. })
        ));
        // Enormous declared shape: an error before any allocation.
        assert!(matches!(
            decode(&with_header(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (100000000000, 100000000000), }",
                &[0; 4]
            )),
            Err(NpyError::ShapeOverflow(_))
        ));
        assert!(matches!(
            decode(&with_header(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }",
                &[0; 4]
            )),
            Err(NpyError::SizeMismatch { .. })
        ));
        assert!(matches!(
            decode(&with_header("{'descr': '<f4', 'shape': (1,), }", &[0; 4])),
            Err(NpyError::Header(_))
        ));
        assert!(matches!(
            decode(&with_header(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }",
                &[0; 4]
            )),
            Err(NpyError::Header(_))
        ));
        assert!(matches!(
            decode(&with_header(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)",
                &[0; 4]
            )),
            Err(NpyError::Header(_))
        ));
        let mut v = with_header("{}", &[]);
        v[6] = 9;
        assert_eq!(decode(&v), Err(NpyError::Version(9, 0)));
    }
}
