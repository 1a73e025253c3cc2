//! NIfTI-1 reading and writing (`.nii` and `.nii.gz`).
//!
//! Reading decodes every integer and float data type to `f32` after applying
//! `scl_slope`/`scl_inter` (a zero or non-finite slope means "no scaling", as
//! the standard says). Writing reuses the header of the grid, so that outputs
//! keep the input's dimensions, `pixdim`, qform/sform codes and parameters.

use std::io::Read;
use std::path::Path;

use nifti::{NiftiHeader, NiftiType};

use super::grid::{affine_from_header, Grid};
use crate::error::{Error, Result};

/// NIfTI intent code for label maps (`NIFTI_INTENT_LABEL`).
const INTENT_LABEL: i16 = 1002;

/// Reads a NIfTI file fully: its grid and its voxel values (scaled, x fastest).
pub(crate) fn read_nifti(path: &Path) -> Result<(Grid, Vec<f32>)> {
    let bytes = read_maybe_gzipped(path)?;
    if bytes.len() < 348 {
        return Err(Error::invalid_file(
            path,
            format!(
                "not a NIfTI-1 file: only {} bytes (a header needs 348)",
                bytes.len()
            ),
        ));
    }
    let header = NiftiHeader::from_reader(&bytes[..])
        .map_err(|e| Error::invalid_file(path, format!("not a valid NIfTI-1 header: {e}")))?;
    if &header.magic != b"n+1\0" {
        return Err(Error::invalid_file(
            path,
            "header/image pairs (.hdr/.img) are not supported: use a single .nii or .nii.gz file",
        ));
    }
    let dims = spatial_dims(&header).map_err(|reason| Error::invalid_file(path, reason))?;
    let datatype = header.data_type().map_err(|_| {
        Error::invalid_file(
            path,
            format!("unknown NIfTI datatype code {}", header.datatype),
        )
    })?;
    let element_size = element_size(datatype).ok_or_else(|| {
        Error::invalid_file(
            path,
            format!(
                "voxel type {datatype:?} is not supported (only integer and real scalar types)"
            ),
        )
    })?;
    let n_voxels: usize = dims.iter().product();
    let offset = header.vox_offset as usize;
    let needed = n_voxels
        .checked_mul(element_size)
        .and_then(|n| n.checked_add(offset))
        .ok_or_else(|| Error::invalid_file(path, format!("dimensions {dims:?} are too large")))?;
    if header.vox_offset < 348.0 || bytes.len() < needed {
        return Err(Error::invalid_file(
            path,
            format!(
                "truncated: {} bytes of voxel data expected after offset {}, file has {} bytes",
                n_voxels * element_size,
                header.vox_offset,
                bytes.len()
            ),
        ));
    }
    let raw = &bytes[offset..needed];
    let mut data = decode(raw, datatype, header.endianness == nifti::Endianness::Big);
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

fn read_maybe_gzipped(path: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = std::io::BufReader::new(file);
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    // Trust the content, not the file name: gzip streams start with 1f 8b.
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut decoded = Vec::with_capacity(bytes.len() * 4);
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_end(&mut decoded)
            .map_err(|e| Error::invalid_file(path, format!("corrupt gzip data: {e}")))?;
        bytes = decoded;
    }
    Ok(bytes)
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
    let mut shape: Vec<usize> = dims.to_vec();
    shape.resize(rank, 1);
    use ndarray_nifti::ShapeBuilder;
    let array = ndarray_nifti::ArrayView::from_shape(ndarray_nifti::IxDyn(&shape).f(), data)
        .map_err(|e| {
            Error::Internal(format!("voxel buffer does not fit the grid {dims:?}: {e}"))
        })?;
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
    let name = path.to_string_lossy();
    if !(name.ends_with(".nii") || name.ends_with(".nii.gz")) {
        return Err(Error::invalid_argument(format!(
            "output file {} must end in .nii or .nii.gz",
            path.display()
        )));
    }
    nifti::writer::WriterOptions::new(path)
        .reference_header(&header)
        .write_nifti(&array)
        .map_err(|e| match e {
            nifti::NiftiError::Io(source) => Error::io(path, source),
            other => Error::invalid_file(path, format!("cannot write NIfTI: {other}")),
        })
}
