//! NIfTI-1 reading and writing (`.nii` and `.nii.gz`).
//!
//! Reading decodes every integer and float data type to `f32` after applying
//! `scl_slope`/`scl_inter` (a zero or non-finite slope means "no scaling", as
//! the standard says). Writing reuses the header of the grid, so that outputs
//! keep the input's dimensions, `pixdim`, qform/sform codes and parameters.

use std::io::{BufRead, Read, Write};
use std::path::Path;

use nifti::{NiftiHeader, NiftiType};

use super::grid::{affine_from_header, Grid};
use crate::error::{Error, Result};

/// NIfTI intent code for label maps (`NIFTI_INTENT_LABEL`).
const INTENT_LABEL: i16 = 1002;

/// Most voxels a NIfTI volume may declare (2^31, as for volumes handed over the C ABI):
/// checked before any voxel memory is allocated.
pub const MAX_NIFTI_VOXELS: usize = 1 << 31;

/// Largest `vox_offset` accepted (header extensions above 16 MiB are not plausible;
/// every offset up to it is exact in the header's f32).
const MAX_VOX_OFFSET: f64 = (1u64 << 24) as f64;

/// Bytes a gzip stream may inflate to beyond what its header declares (trailing padding
/// some writers add); anything more is refused as a decompression bomb.
const GZIP_MARGIN: usize = 1 << 20;

/// Bytes reserved up front for an inflated gzip stream (a 256³ float volume is 64 MiB);
/// beyond it the buffer grows as data arrives, so a header declaring gigabytes over a
/// few kilobytes of stream allocates no more than the stream inflates to.
const GZIP_INITIAL_BUFFER: usize = 1 << 26;

/// Reads a NIfTI file fully: its grid and its voxel values (scaled, x fastest).
///
/// NIfTI-1 and NIfTI-2, little- and big-endian, plain or gzip-compressed. Sizes come
/// from the header and are checked before allocation; a gzip stream is inflated only up
/// to the size its header declares plus [`GZIP_MARGIN`].
pub(crate) fn read_nifti(path: &Path) -> Result<(Grid, Vec<f32>)> {
    let invalid = |reason: String| Error::invalid_file(path, reason);
    let (mut reader, gzipped, file_bytes) = open_maybe_gzipped(path)?;
    let read_error = |e: std::io::Error| {
        if gzipped && e.kind() != std::io::ErrorKind::NotFound {
            Error::invalid_file(path, format!("corrupt gzip data: {e}"))
        } else {
            Error::io(path, e)
        }
    };
    let mut bytes = Vec::with_capacity(NIFTI2_HEADER_SIZE);
    reader
        .by_ref()
        .take(NIFTI2_HEADER_SIZE as u64)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    let header = parse_header(&bytes).map_err(invalid)?;
    let dims = spatial_dims(&header).map_err(invalid)?;
    let datatype = header.data_type().map_err(|_| {
        invalid(format!(
            "{} is not a known NIfTI voxel type",
            datatype_name(header.datatype)
        ))
    })?;
    let element_size = element_size(datatype).ok_or_else(|| {
        invalid(format!(
            "voxel type {} is not supported (only integer and real scalar types)",
            datatype_name(header.datatype)
        ))
    })?;
    let n_voxels: usize = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= MAX_NIFTI_VOXELS)
        .ok_or_else(|| {
            invalid(format!(
                "dimensions {dims:?} are too large (at most 2^31 voxels are supported)"
            ))
        })?;
    let vox_offset = f64::from(header.vox_offset);
    let minimum_offset = if header.sizeof_hdr == NIFTI2_HEADER_SIZE as i32 {
        NIFTI2_HEADER_SIZE
    } else {
        348
    };
    if !(vox_offset.is_finite()
        && vox_offset.fract() == 0.0
        && vox_offset >= minimum_offset as f64
        && vox_offset <= MAX_VOX_OFFSET)
    {
        return Err(invalid(format!(
            "vox_offset {} is not a valid voxel data offset: a single-file NIfTI needs a whole \
             number of bytes from {minimum_offset} (the end of the header) to 16 MiB",
            header.vox_offset
        )));
    }
    let offset = vox_offset as usize;
    let data_bytes = n_voxels * element_size;
    let needed = offset + data_bytes;
    // Read what the header declares and no more (plus the margin for gzip, to tell a
    // bomb from padding).
    let limit = if gzipped {
        needed + GZIP_MARGIN + 1
    } else {
        needed
    };
    let wanted = limit.saturating_sub(bytes.len()) as u64;
    let truncated = |have: u64| {
        invalid(format!(
            "truncated: {data_bytes} bytes of voxel data expected after offset {offset}, but the \
             {} has only {have} bytes",
            if gzipped { "decompressed file" } else { "file" },
        ))
    };
    // A plain file too short for what its header declares is refused before any voxel
    // memory is taken; a gzip stream's inflated size is only known by inflating it, so
    // its buffer grows with the data actually read rather than with the header's claim.
    if !gzipped && file_bytes < needed as u64 {
        return Err(truncated(file_bytes));
    }
    let reserve = if gzipped {
        needed.min(GZIP_INITIAL_BUFFER)
    } else {
        needed
    };
    bytes
        .try_reserve_exact(reserve.saturating_sub(bytes.len()))
        .map_err(|_| {
            invalid(format!(
                "cannot allocate {needed} bytes for dimensions {dims:?}"
            ))
        })?;
    reader
        .take(wanted)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() < needed {
        return Err(truncated(bytes.len() as u64));
    }
    if gzipped && bytes.len() > needed + GZIP_MARGIN {
        return Err(invalid(format!(
            "the gzip stream inflates to more than the {needed} bytes its header declares \
             (stopped at {} bytes): corrupt file or decompression bomb",
            bytes.len()
        )));
    }
    let raw = &bytes[offset..needed];
    let mut data = decode(raw, datatype, header.endianness == nifti::Endianness::Big);
    drop(bytes);
    apply_scaling(&mut data, header.scl_slope, header.scl_inter);
    if let Some(index) = data.iter().position(|v| !v.is_finite()) {
        let count = data.iter().filter(|v| !v.is_finite()).count();
        let i = index % dims[0];
        let j = index / dims[0] % dims[1];
        let k = index / (dims[0] * dims[1]);
        return Err(Error::invalid_file(
            path,
            format!(
                "{count} voxels are NaN or infinite (first at voxel ({i}, {j}, {k}): {})",
                data[index]
            ),
        ));
    }
    let affine = affine_from_header(&header, dims);
    let grid = Grid::with_header(
        dims,
        affine,
        header,
        "NIfTI header's voxel-to-world transform",
    )
    .map_err(|e| match e {
        Error::InvalidArgument(reason) => Error::invalid_file(path, reason),
        other => other,
    })?;
    Ok((grid, data))
}

/// The file's content as a stream, inflated when it is gzip data (told by its first
/// bytes, not its name), and whether it was.
fn open_maybe_gzipped(path: &Path) -> Result<(Box<dyn Read>, bool, u64)> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let file_bytes = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut reader = std::io::BufReader::new(file);
    let head = reader.fill_buf().map_err(|e| Error::io(path, e))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok((
            Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
            true,
            file_bytes,
        ))
    } else {
        Ok((Box::new(reader), false, file_bytes))
    }
}

/// Size of a NIfTI-2 header (`sizeof_hdr`).
const NIFTI2_HEADER_SIZE: usize = 540;

/// Reads fields of one byte order from a header.
struct Fields<'a> {
    bytes: &'a [u8],
    big_endian: bool,
}

impl Fields<'_> {
    fn array<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut value: [u8; N] = self.bytes[at..at + N].try_into().expect("N bytes");
        if self.big_endian {
            value.reverse();
        }
        value
    }
    fn i16(&self, at: usize) -> i16 {
        i16::from_le_bytes(self.array(at))
    }
    fn i32(&self, at: usize) -> i32 {
        i32::from_le_bytes(self.array(at))
    }
    fn i64(&self, at: usize) -> i64 {
        i64::from_le_bytes(self.array(at))
    }
    fn f32(&self, at: usize) -> f32 {
        f32::from_le_bytes(self.array(at))
    }
    fn f64(&self, at: usize) -> f64 {
        f64::from_le_bytes(self.array(at))
    }
    fn raw<const N: usize>(&self, at: usize) -> [u8; N] {
        self.bytes[at..at + N].try_into().expect("N bytes")
    }
    /// A real field of `width` bytes (NIfTI-1 floats, NIfTI-2 doubles) as `f32`: the
    /// NIfTI-1 header the crate uses keeps every scanner geometry far below a micrometre.
    fn real(&self, at: usize, width: usize) -> f32 {
        if width == 4 {
            self.f32(at)
        } else {
            self.f64(at) as f32
        }
    }
    /// A dimension of `width` bytes (NIfTI-1 `i16`, NIfTI-2 `i64`).
    fn dim(&self, at: usize, width: usize) -> i64 {
        if width == 2 {
            i64::from(self.i16(at))
        } else {
            self.i64(at)
        }
    }
    /// A code of `width` bytes (NIfTI-1 `i16` as stored, NIfTI-2 `i32` clamped to the
    /// NIfTI-1 range).
    fn code(&self, at: usize, width: usize) -> i16 {
        if width == 2 {
            self.i16(at)
        } else {
            self.i32(at).clamp(0, i32::from(i16::MAX)) as i16
        }
    }
    /// `xyzt_units` (NIfTI-1 a byte, NIfTI-2 an `i32` clamped to a byte).
    fn units(&self, at: usize, width: usize) -> u8 {
        if width == 1 {
            self.bytes[at]
        } else {
            self.i32(at).clamp(0, 255) as u8
        }
    }
}

/// Where the fields that NIfTI-1 and NIfTI-2 share lie in each header, and how wide
/// their values are: one table per format, read by one piece of code.
struct Layout {
    /// Bytes of a real value (4: float, 8: double).
    real: usize,
    /// Bytes of one `dim` entry (2 or 8).
    dim_width: usize,
    /// Bytes of `intent_code`, `qform_code` and `sform_code` (2 or 4).
    code_width: usize,
    /// Bytes of `xyzt_units` (1 or 4).
    units_width: usize,
    datatype: usize,
    bitpix: usize,
    dim: usize,
    intent_p1: usize,
    pixdim: usize,
    scl_slope: usize,
    scl_inter: usize,
    cal_max: usize,
    cal_min: usize,
    slice_duration: usize,
    toffset: usize,
    descrip: usize,
    aux_file: usize,
    qform_code: usize,
    sform_code: usize,
    quatern_b: usize,
    srow_x: usize,
    xyzt_units: usize,
    intent_code: usize,
    intent_name: usize,
    dim_info: usize,
}

/// NIfTI-1 (348-byte header).
const NIFTI1_LAYOUT: Layout = Layout {
    real: 4,
    dim_width: 2,
    code_width: 2,
    units_width: 1,
    datatype: 70,
    bitpix: 72,
    dim: 40,
    intent_p1: 56,
    pixdim: 76,
    scl_slope: 112,
    scl_inter: 116,
    cal_max: 124,
    cal_min: 128,
    slice_duration: 132,
    toffset: 136,
    descrip: 148,
    aux_file: 228,
    qform_code: 252,
    sform_code: 254,
    quatern_b: 256,
    srow_x: 280,
    xyzt_units: 123,
    intent_code: 68,
    intent_name: 328,
    dim_info: 39,
};

/// NIfTI-2 (540-byte header).
const NIFTI2_LAYOUT: Layout = Layout {
    real: 8,
    dim_width: 8,
    code_width: 4,
    units_width: 4,
    datatype: 12,
    bitpix: 14,
    dim: 16,
    intent_p1: 80,
    pixdim: 104,
    scl_slope: 176,
    scl_inter: 184,
    cal_max: 192,
    cal_min: 200,
    slice_duration: 208,
    toffset: 216,
    descrip: 240,
    aux_file: 320,
    qform_code: 344,
    sform_code: 348,
    quatern_b: 352,
    srow_x: 400,
    xyzt_units: 500,
    intent_code: 504,
    intent_name: 508,
    dim_info: 524,
};

/// Parses a NIfTI-1 or NIfTI-2 header of either byte order (told by `sizeof_hdr`, which
/// is 348 or 540) into the NIfTI-1 header the rest of the crate uses.
fn parse_header(bytes: &[u8]) -> std::result::Result<NiftiHeader, String> {
    if bytes.len() < 4 {
        return Err(format!(
            "not a NIfTI file: only {} bytes (a header needs 348)",
            bytes.len()
        ));
    }
    let size_le = i32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
    let size_be = i32::from_be_bytes(bytes[..4].try_into().expect("4 bytes"));
    let (size, big_endian) = match (size_le, size_be) {
        (348, _) | (540, _) => (size_le as usize, false),
        (_, 348) | (_, 540) => (size_be as usize, true),
        _ => {
            return Err(format!(
                "not a NIfTI file: its header size field is {size_le} (NIfTI-1 has 348, \
                 NIfTI-2 540, in either byte order)"
            ))
        }
    };
    if bytes.len() < size {
        return Err(format!(
            "not a NIfTI file: only {} bytes (a NIfTI-{} header needs {size})",
            bytes.len(),
            if size == 348 { 1 } else { 2 }
        ));
    }
    let f = Fields { bytes, big_endian };
    let mut h = NiftiHeader {
        endianness: if big_endian {
            nifti::Endianness::Big
        } else {
            nifti::Endianness::Little
        },
        ..NiftiHeader::default()
    };
    let layout = if size == 348 {
        h.data_type = f.raw(4);
        h.db_name = f.raw(14);
        h.extents = f.i32(32);
        h.session_error = f.i16(36);
        h.regular = bytes[38];
        h.slice_start = f.i16(74);
        h.vox_offset = f.f32(108);
        h.slice_end = f.i16(120);
        h.slice_code = bytes[122];
        h.glmax = f.i32(140);
        h.glmin = f.i32(144);
        h.magic = f.raw(344);
        match &h.magic {
            b"n+1\0" => {}
            b"ni1\0" => {
                return Err(
                    "header/image pairs (.hdr/.img) are not supported: use a single \
                            .nii or .nii.gz file"
                        .into(),
                )
            }
            other => {
                return Err(format!(
                    "not a NIfTI-1 file: magic {:?} is not \"n+1\" (an Analyze 7.5 file?)",
                    String::from_utf8_lossy(other)
                ))
            }
        }
        &NIFTI1_LAYOUT
    } else {
        let magic: [u8; 8] = f.raw(4);
        match &magic {
            b"n+2\0\r\n\x1a\n" => {}
            b"ni2\0\r\n\x1a\n" => {
                return Err(
                    "NIfTI-2 header/image pairs (.hdr/.img) are not supported: use a \
                            single .nii or .nii.gz file"
                        .into(),
                )
            }
            _ => {
                return Err(format!(
                    "not a NIfTI-2 file: magic {:?} is not \"n+2\"",
                    String::from_utf8_lossy(&magic)
                ))
            }
        }
        h.magic = *b"n+1\0";
        let vox_offset = f.i64(168);
        if !(0..=MAX_VOX_OFFSET as i64).contains(&vox_offset) {
            return Err(format!(
                "vox_offset {vox_offset} is not a valid voxel data offset: a single-file NIfTI \
                 needs a whole number of bytes from {NIFTI2_HEADER_SIZE} (the end of the \
                 header) to 16 MiB"
            ));
        }
        h.vox_offset = vox_offset as f32;
        &NIFTI2_LAYOUT
    };
    let l = layout;
    let real = |at: usize| f.real(at, l.real);
    h.datatype = f.i16(l.datatype);
    h.bitpix = f.i16(l.bitpix);
    let dims: [i64; 8] = std::array::from_fn(|i| f.dim(l.dim + l.dim_width * i, l.dim_width));
    [h.intent_p1, h.intent_p2, h.intent_p3] =
        std::array::from_fn(|i| real(l.intent_p1 + l.real * i));
    h.pixdim = std::array::from_fn(|i| real(l.pixdim + l.real * i));
    h.scl_slope = real(l.scl_slope);
    h.scl_inter = real(l.scl_inter);
    h.cal_max = real(l.cal_max);
    h.cal_min = real(l.cal_min);
    h.slice_duration = real(l.slice_duration);
    h.toffset = real(l.toffset);
    h.descrip = bytes[l.descrip..l.descrip + 80].to_vec();
    h.aux_file = f.raw(l.aux_file);
    h.qform_code = f.code(l.qform_code, l.code_width);
    h.sform_code = f.code(l.sform_code, l.code_width);
    [
        h.quatern_b,
        h.quatern_c,
        h.quatern_d,
        h.quatern_x,
        h.quatern_y,
        h.quatern_z,
    ] = std::array::from_fn(|i| real(l.quatern_b + l.real * i));
    h.srow_x = std::array::from_fn(|i| real(l.srow_x + l.real * i));
    h.srow_y = std::array::from_fn(|i| real(l.srow_x + l.real * (4 + i)));
    h.srow_z = std::array::from_fn(|i| real(l.srow_x + l.real * (8 + i)));
    h.xyzt_units = f.units(l.xyzt_units, l.units_width);
    h.intent_code = f.code(l.intent_code, l.code_width);
    h.intent_name = f.raw(l.intent_name);
    h.dim_info = bytes[l.dim_info];
    h.sizeof_hdr = size as i32;
    let rank = dims[0];
    if !(1..=7).contains(&rank) {
        return Err(format!(
            "dim[0] = {rank} is not a valid number of dimensions (1 to 7)"
        ));
    }
    for (axis, &d) in dims.iter().enumerate().take(rank as usize + 1).skip(1) {
        if d < 0 || d > i64::from(i16::MAX) {
            return Err(format!(
                "dim[{axis}] = {d} is not a valid size (0 to 32767 voxels)"
            ));
        }
    }
    for (slot, &d) in h.dim.iter_mut().zip(&dims) {
        *slot = u16::try_from(d.clamp(0, i64::from(i16::MAX))).unwrap_or(0);
    }
    Ok(h)
}

/// A datatype code with its standard name, for messages.
fn datatype_name(code: i16) -> String {
    let name = match code {
        0 => "DT_UNKNOWN",
        1 => "DT_BINARY (1 bit per voxel)",
        2 => "DT_UINT8",
        4 => "DT_INT16",
        8 => "DT_INT32",
        16 => "DT_FLOAT32",
        32 => "DT_COMPLEX64",
        64 => "DT_FLOAT64",
        128 => "DT_RGB24",
        256 => "DT_INT8",
        512 => "DT_UINT16",
        768 => "DT_UINT32",
        1024 => "DT_INT64",
        1280 => "DT_UINT64",
        1536 => "DT_FLOAT128",
        1792 => "DT_COMPLEX128",
        2048 => "DT_COMPLEX256",
        2304 => "DT_RGBA32",
        _ => return format!("datatype code {code} (not defined by the NIfTI standard)"),
    };
    format!("{name} (datatype code {code})")
}

/// The three spatial dimensions; a 4-D file is accepted only with one volume.
fn spatial_dims(header: &NiftiHeader) -> std::result::Result<[usize; 3], String> {
    let rank = header.dim[0];
    if !(1..=7).contains(&rank) {
        return Err(format!(
            "dim[0] = {rank} is not a valid number of dimensions (1 to 7)"
        ));
    }
    let rank = rank as usize;
    let dim = &header.dim[1..=rank];
    if dim.contains(&0) {
        return Err(format!("dimensions {dim:?} contain a zero"));
    }
    if rank < 3 {
        return Err(format!(
            "{rank}-D image with dimensions {dim:?}: a 3-D volume is needed"
        ));
    }
    if dim[3..].iter().any(|&d| d != 1) {
        return Err(format!(
            "{rank}-D image with dimensions {dim:?}: only a single 3-D volume is supported"
        ));
    }
    if dim[..3].contains(&1) {
        return Err(format!(
            "image with dimensions {dim:?} is 2-D (a single slice): a 3-D volume is needed"
        ));
    }
    Ok([dim[0] as usize, dim[1] as usize, dim[2] as usize])
}

fn element_size(datatype: NiftiType) -> Option<usize> {
    use NiftiType::*;
    Some(match datatype {
        Uint8 | Int8 => 1,
        Uint16 | Int16 => 2,
        Uint32 | Int32 | Float32 => 4,
        Uint64 | Int64 | Float64 => 8,
        _ => return None,
    })
}

fn decode(raw: &[u8], datatype: NiftiType, big_endian: bool) -> Vec<f32> {
    use NiftiType::*;
    macro_rules! convert {
        ($t:ty, $n:expr) => {
            raw.chunks_exact($n)
                .map(|c| {
                    let bytes: [u8; $n] = c.try_into().expect("chunk of exact size");
                    let value = if big_endian {
                        <$t>::from_be_bytes(bytes)
                    } else {
                        <$t>::from_le_bytes(bytes)
                    };
                    value as f32
                })
                .collect()
        };
    }
    match datatype {
        Uint8 => raw.iter().map(|&v| f32::from(v)).collect(),
        Int8 => raw.iter().map(|&v| f32::from(v as i8)).collect(),
        Uint16 => convert!(u16, 2),
        Int16 => convert!(i16, 2),
        Uint32 => convert!(u32, 4),
        Int32 => convert!(i32, 4),
        Uint64 => convert!(u64, 8),
        Int64 => convert!(i64, 8),
        Float32 => convert!(f32, 4),
        Float64 => convert!(f64, 8),
        _ => unreachable!("element_size rejected {datatype:?}"),
    }
}

fn apply_scaling(data: &mut [f32], slope: f32, inter: f32) {
    if slope == 0.0 || !slope.is_finite() || !inter.is_finite() || (slope == 1.0 && inter == 0.0) {
        return;
    }
    let (slope, inter) = (f64::from(slope), f64::from(inter));
    for value in data.iter_mut() {
        *value = (f64::from(*value) * slope + inter) as f32;
    }
}

/// Element types that can be written.
pub(crate) trait WritableElement: nifti::DataElement + bytemuck::Pod + Copy {}
impl WritableElement for f32 {}
impl WritableElement for u8 {}

/// Writes `data` (x fastest) on `grid`; the header is the grid's, with the data
/// type, scaling, display range and intent adapted to the content.
pub(crate) fn write_nifti<T: WritableElement>(
    path: &Path,
    grid: &Grid,
    data: &[T],
    label_map: bool,
    display_range: (f32, f32),
) -> Result<()> {
    let mut header = grid.header.clone();
    header.cal_min = display_range.0;
    header.cal_max = display_range.1;
    header.intent_code = if label_map { INTENT_LABEL } else { 0 };
    header.intent_name = [0; 16];
    header.intent_p1 = 0.0;
    header.intent_p2 = 0.0;
    header.intent_p3 = 0.0;
    header.glmin = 0;
    header.glmax = 0;
    // Keep the input's rank (a 4-D single-volume input gives a 4-D output).
    let rank = usize::from(header.dim[0]).clamp(3, 7);
    let dims = grid.dims();
    if data.len() != dims.iter().product::<usize>() {
        return Err(Error::Internal(format!(
            "{} voxels do not fit the grid {dims:?}",
            data.len()
        )));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            return Err(Error::io(
                path,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("output folder {} does not exist", parent.display()),
                ),
            ));
        }
    }
    let gzip = nifti_output_kind(path)?;
    header.dim = [1; 8];
    header.dim[0] = rank as u16;
    for (slot, &d) in header.dim[1..].iter_mut().zip(&dims) {
        *slot = u16::try_from(d).map_err(|_| {
            Error::invalid_argument(format!(
                "dimensions {dims:?} do not fit a NIfTI-1 header (at most 32767 per axis)"
            ))
        })?;
    }
    header.sizeof_hdr = 348;
    header.datatype = T::DATA_TYPE as i16;
    header.bitpix = (std::mem::size_of::<T>() * 8) as i16;
    header.vox_offset = 352.0;
    header.scl_slope = 1.0;
    header.scl_inter = 0.0;
    header.magic = *b"n+1\0";
    let mut bytes = header_bytes(&header).to_vec();
    // No header extensions.
    bytes.extend_from_slice(&[0; 4]);
    // Written in the machine's byte order, which the header's own fields record.
    let voxels: &[u8] = bytemuck::cast_slice(data);
    crate::weights::atomic_write(path, |file| {
        let io = |e| Error::io(path, e);
        if gzip {
            let mut encoder = flate2::write::GzEncoder::new(file, flate2::Compression::default());
            encoder.write_all(&bytes).map_err(io)?;
            encoder.write_all(voxels).map_err(io)?;
            encoder.finish().map_err(io)?;
        } else {
            file.write_all(&bytes).map_err(io)?;
            file.write_all(voxels).map_err(io)?;
        }
        Ok(())
    })
}

/// Whether an output path names a gzip-compressed NIfTI (`.nii.gz`) or a plain one
/// (`.nii`); any other name is an error, checked before any work is done.
pub fn nifti_output_kind(path: &Path) -> Result<bool> {
    let name = path.to_string_lossy();
    if name.ends_with(".nii.gz") {
        Ok(true)
    } else if name.ends_with(".nii") {
        Ok(false)
    } else {
        Err(Error::invalid_argument(format!(
            "output file {} must end in .nii or .nii.gz",
            path.display()
        )))
    }
}

/// The 348 bytes of a NIfTI-1 header, in the machine's byte order.
fn header_bytes(h: &NiftiHeader) -> [u8; 348] {
    let mut out = [0u8; 348];
    let mut put = |at: usize, bytes: &[u8]| out[at..at + bytes.len()].copy_from_slice(bytes);
    put(0, &h.sizeof_hdr.to_ne_bytes());
    put(4, &h.data_type);
    put(14, &h.db_name);
    put(32, &h.extents.to_ne_bytes());
    put(36, &h.session_error.to_ne_bytes());
    put(38, &[h.regular, h.dim_info]);
    for (i, d) in h.dim.iter().enumerate() {
        put(40 + 2 * i, &d.to_ne_bytes());
    }
    for (i, v) in [h.intent_p1, h.intent_p2, h.intent_p3].iter().enumerate() {
        put(56 + 4 * i, &v.to_ne_bytes());
    }
    put(68, &h.intent_code.to_ne_bytes());
    put(70, &h.datatype.to_ne_bytes());
    put(72, &h.bitpix.to_ne_bytes());
    put(74, &h.slice_start.to_ne_bytes());
    for (i, v) in h.pixdim.iter().enumerate() {
        put(76 + 4 * i, &v.to_ne_bytes());
    }
    put(108, &h.vox_offset.to_ne_bytes());
    put(112, &h.scl_slope.to_ne_bytes());
    put(116, &h.scl_inter.to_ne_bytes());
    put(120, &h.slice_end.to_ne_bytes());
    put(122, &[h.slice_code, h.xyzt_units]);
    for (i, v) in [h.cal_max, h.cal_min, h.slice_duration, h.toffset]
        .iter()
        .enumerate()
    {
        put(124 + 4 * i, &v.to_ne_bytes());
    }
    put(140, &h.glmax.to_ne_bytes());
    put(144, &h.glmin.to_ne_bytes());
    let descrip = &h.descrip[..h.descrip.len().min(80)];
    put(148, descrip);
    put(228, &h.aux_file);
    put(252, &h.qform_code.to_ne_bytes());
    put(254, &h.sform_code.to_ne_bytes());
    let quatern = [
        h.quatern_b,
        h.quatern_c,
        h.quatern_d,
        h.quatern_x,
        h.quatern_y,
        h.quatern_z,
    ];
    for (i, v) in quatern
        .iter()
        .chain(&h.srow_x)
        .chain(&h.srow_y)
        .chain(&h.srow_z)
        .enumerate()
    {
        put(256 + 4 * i, &v.to_ne_bytes());
    }
    put(328, &h.intent_name);
    put(344, &h.magic);
    out
}
