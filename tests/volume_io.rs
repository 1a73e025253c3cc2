//! NIfTI reading/writing: synthetic round trips, data types, bad input, and
//! every shared real volume (BRAINSAM_DATA).

mod common;

use std::path::Path;

use brainsam::volume::{Grid, LabelVolume, Volume};
use brainsam::Error;

fn oblique_grid(dims: [usize; 3]) -> Grid {
    // 10° rotation about S, anisotropic voxels, LPS → as ITK would give it.
    let angle = 10f64.to_radians();
    let direction = [
        [angle.cos(), -angle.sin(), 0.0],
        [angle.sin(), angle.cos(), 0.0],
        [0.0, 0.0, 1.0],
    ];
    Grid::from_lps(dims, [0.8, 0.9, 1.5], [12.5, -30.0, 4.0], direction).unwrap()
}

fn ramp(grid: &Grid) -> Vec<f32> {
    (0..grid.len())
        .map(|n| (n % 977) as f32 * 0.25 - 20.0)
        .collect()
}

#[test]
fn lps_geometry_converts_to_ras_and_back() {
    let grid = oblique_grid([5, 6, 7]);
    let origin = grid.origin_lps();
    assert!((origin[0] - 12.5).abs() < 1e-12 && (origin[1] + 30.0).abs() < 1e-12);
    // RAS of voxel (0,0,0) flips x and y of the LPS origin.
    let ras = grid.voxel_to_ras_point([0.0, 0.0, 0.0]);
    assert!(
        (ras[0] + 12.5).abs() < 1e-12
            && (ras[1] - 30.0).abs() < 1e-12
            && (ras[2] - 4.0).abs() < 1e-12
    );
    let spacing = grid.spacing();
    assert!((spacing[0] - 0.8).abs() < 1e-12 && (spacing[2] - 1.5).abs() < 1e-12);
    let direction = grid.direction_lps();
    assert!((direction[1][0] - 10f64.to_radians().sin()).abs() < 1e-12);
    let back = grid.ras_to_voxel_point(grid.voxel_to_ras_point([1.5, 2.0, -3.0]));
    assert!(
        (back[0] - 1.5).abs() < 1e-9
            && (back[1] - 2.0).abs() < 1e-9
            && (back[2] + 3.0).abs() < 1e-9
    );
    // An identity LPS direction is "LPS" in RAS terms.
    let lps = Grid::from_lps(
        [2, 2, 2],
        [1.0; 3],
        [0.0; 3],
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
    )
    .unwrap();
    assert_eq!(lps.orientation_code(), "LPS");
}

#[test]
fn synthetic_round_trip_nii_and_nii_gz() {
    let dir = tempfile::tempdir().unwrap();
    let grid = oblique_grid([9, 8, 7]);
    let data = ramp(&grid);
    let volume = Volume::new(grid.clone(), data.clone()).unwrap();
    for name in ["image.nii", "image.nii.gz"] {
        let path = dir.path().join(name);
        volume.write(&path).unwrap();
        let back = Volume::read(&path).unwrap();
        assert_eq!(back.data(), &data[..], "{name}");
        assert!(
            back.grid().same_grid(&grid, 1e-4),
            "{name}: {:?} vs {:?}",
            back.grid(),
            grid
        );
        assert_eq!(back.get(3, 2, 1), data[3 + 9 * (2 + 8)]);
        assert_eq!(back.array()[[3, 2, 1]], data[3 + 9 * (2 + 8)]);
    }
    // gzip is detected from the content, not the name.
    std::fs::copy(
        dir.path().join("image.nii.gz"),
        dir.path().join("gz_named.nii"),
    )
    .unwrap();
    assert_eq!(
        Volume::read(dir.path().join("gz_named.nii"))
            .unwrap()
            .data(),
        &data[..]
    );
}

#[test]
fn label_map_keeps_the_input_header_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let grid = oblique_grid([6, 5, 4]);
    let image = Volume::new(grid.clone(), ramp(&grid)).unwrap();
    let image_path = dir.path().join("image.nii.gz");
    image.write(&image_path).unwrap();
    let image = Volume::read(&image_path).unwrap();
    let labels: Vec<u8> = (0..grid.len()).map(|n| (n % 13) as u8).collect();
    let label_map = LabelVolume::new(image.grid().clone(), labels.clone()).unwrap();
    let label_path = dir.path().join("labels.nii.gz");
    label_map.write(&label_path).unwrap();
    let back = Volume::read(&label_path).unwrap();
    assert_eq!(
        back.data().iter().map(|&v| v as u8).collect::<Vec<_>>(),
        labels
    );
    let (a, b) = (image.grid().nifti_header(), back.grid().nifti_header());
    assert_eq!(a.dim, b.dim);
    assert_eq!(a.pixdim, b.pixdim);
    assert_eq!((a.qform_code, a.sform_code), (b.qform_code, b.sform_code));
    assert_eq!(
        (
            a.quatern_b,
            a.quatern_c,
            a.quatern_d,
            a.quatern_x,
            a.quatern_y,
            a.quatern_z
        ),
        (
            b.quatern_b,
            b.quatern_c,
            b.quatern_d,
            b.quatern_x,
            b.quatern_y,
            b.quatern_z
        )
    );
    assert_eq!(
        (a.srow_x, a.srow_y, a.srow_z),
        (b.srow_x, b.srow_y, b.srow_z)
    );
    assert_eq!(b.datatype, 2, "labels are written as uint8");
    assert_eq!(b.intent_code, 1002, "NIFTI_INTENT_LABEL");
    assert_eq!(back.grid().voxel_to_ras(), image.grid().voxel_to_ras());
}

/// Voxel storage of a hand-made NIfTI test file.
struct RawNifti {
    dims: [u16; 3],
    datatype: i16,
    bitpix: i16,
    big_endian: bool,
    slope: f32,
    inter: f32,
}

/// An unscaled little-endian uint8 file.
fn u8_file(dims: [u16; 3]) -> RawNifti {
    RawNifti {
        dims,
        datatype: 2,
        bitpix: 8,
        big_endian: false,
        slope: 1.0,
        inter: 0.0,
    }
}

/// Writes a NIfTI file with arbitrary data type, byte order and scaling, byte by
/// byte (an LAS grid with voxel size 1 x 2 x 3 mm).
fn write_raw_nifti(path: &Path, raw: RawNifti, payload: &[u8]) {
    let big_endian = raw.big_endian;
    let header = nifti::NiftiHeader {
        dim: [3, raw.dims[0], raw.dims[1], raw.dims[2], 1, 1, 1, 1],
        datatype: raw.datatype,
        bitpix: raw.bitpix,
        pixdim: [1.0, 1.0, 2.0, 3.0, 1.0, 1.0, 1.0, 1.0],
        vox_offset: 352.0,
        scl_slope: raw.slope,
        scl_inter: raw.inter,
        magic: *b"n+1\0",
        sform_code: 1,
        qform_code: 0,
        srow_x: [-1.0, 0.0, 0.0, 10.0],
        srow_y: [0.0, 2.0, 0.0, -20.0],
        srow_z: [0.0, 0.0, 3.0, 5.0],
        ..Default::default()
    };
    let mut bytes = Vec::new();
    macro_rules! put {
        ($v:expr) => {
            if big_endian {
                bytes.extend_from_slice(&$v.to_be_bytes())
            } else {
                bytes.extend_from_slice(&$v.to_le_bytes())
            }
        };
    }
    put!(348i32);
    bytes.extend_from_slice(&[0u8; 10 + 18]);
    put!(0i32);
    put!(0i16);
    bytes.push(0);
    bytes.push(0);
    for d in header.dim {
        put!(d as i16);
    }
    for _ in 0..3 {
        put!(0f32);
    }
    put!(0i16);
    put!(header.datatype);
    put!(header.bitpix);
    put!(0i16);
    for p in header.pixdim {
        put!(p);
    }
    put!(header.vox_offset);
    put!(header.scl_slope);
    put!(header.scl_inter);
    put!(0i16);
    bytes.push(0);
    bytes.push(2);
    for _ in 0..4 {
        put!(0f32);
    }
    put!(0i32);
    put!(0i32);
    bytes.extend_from_slice(&[0u8; 80 + 24]);
    put!(header.qform_code);
    put!(header.sform_code);
    for _ in 0..6 {
        put!(0f32);
    }
    for row in [header.srow_x, header.srow_y, header.srow_z] {
        for v in row {
            put!(v);
        }
    }
    bytes.extend_from_slice(&[0u8; 16]);
    bytes.extend_from_slice(b"n+1\0");
    assert_eq!(bytes.len(), 348);
    bytes.extend_from_slice(&[0u8; 4]);
    bytes.extend_from_slice(payload);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn reads_integer_and_float_types_with_scaling_and_byte_order() {
    let dir = tempfile::tempdir().unwrap();
    let values: Vec<i16> = (0..24).map(|n| n * 100 - 1000).collect();
    for big_endian in [false, true] {
        let to_bytes = |v: &i16| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let payload: Vec<u8> = values.iter().flat_map(to_bytes).collect();
        let path = dir.path().join(format!("int16_{big_endian}.nii"));
        write_raw_nifti(
            &path,
            RawNifti {
                dims: [2, 3, 4],
                datatype: 4,
                bitpix: 16,
                big_endian,
                slope: 0.5,
                inter: 10.0,
            },
            &payload,
        );
        let volume = Volume::read(&path).unwrap();
        let expected: Vec<f32> = values.iter().map(|&v| v as f32 * 0.5 + 10.0).collect();
        assert_eq!(volume.data(), &expected[..], "big endian {big_endian}");
        assert_eq!(volume.grid().spacing(), [1.0, 2.0, 3.0]);
        assert_eq!(volume.grid().orientation_code(), "LAS");
    }
    // uint8 without scaling (slope 0 means none), float64, int32, uint16.
    let path = dir.path().join("u8.nii");
    write_raw_nifti(
        &path,
        RawNifti {
            slope: 0.0,
            ..u8_file([2, 3, 4])
        },
        &(0..24u8).collect::<Vec<_>>(),
    );
    assert_eq!(Volume::read(&path).unwrap().data()[23], 23.0);
    let path = dir.path().join("f64.nii");
    let payload: Vec<u8> = (0..24)
        .flat_map(|n| (n as f64 * 1.5).to_le_bytes())
        .collect();
    write_raw_nifti(
        &path,
        RawNifti {
            dims: [2, 3, 4],
            datatype: 64,
            bitpix: 64,
            big_endian: false,
            slope: 1.0,
            inter: 0.0,
        },
        &payload,
    );
    assert_eq!(Volume::read(&path).unwrap().data()[5], 7.5);
    let path = dir.path().join("i32.nii");
    let payload: Vec<u8> = (0..24)
        .flat_map(|n| (n * -70000i32).to_be_bytes())
        .collect();
    write_raw_nifti(
        &path,
        RawNifti {
            dims: [2, 3, 4],
            datatype: 8,
            bitpix: 32,
            big_endian: true,
            slope: 1.0,
            inter: 0.0,
        },
        &payload,
    );
    assert_eq!(Volume::read(&path).unwrap().data()[2], -140000.0);
    let path = dir.path().join("u16.nii");
    let payload: Vec<u8> = (0..24)
        .flat_map(|n| (n as u16 * 2000).to_le_bytes())
        .collect();
    write_raw_nifti(
        &path,
        RawNifti {
            dims: [2, 3, 4],
            datatype: 512,
            bitpix: 16,
            big_endian: false,
            slope: 1.0,
            inter: 0.0,
        },
        &payload,
    );
    assert_eq!(Volume::read(&path).unwrap().data()[23], 46000.0);
}

fn expect_invalid_file(result: Result<Volume, Error>, needle: &str) {
    match result {
        Err(Error::InvalidFile { reason, .. }) => {
            assert!(reason.contains(needle), "{reason:?} lacks {needle:?}")
        }
        other => panic!("expected InvalidFile containing {needle:?}, got {other:?}"),
    }
}

#[test]
fn bad_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    // Missing file.
    match Volume::read(dir.path().join("missing.nii.gz")) {
        Err(Error::Io { path, .. }) => assert!(path.ends_with("missing.nii.gz")),
        other => panic!("{other:?}"),
    }
    // Not NIfTI.
    let path = dir.path().join("text.nii");
    std::fs::write(&path, "hello, I am not an image".repeat(40)).unwrap();
    expect_invalid_file(Volume::read(&path), "NIfTI");
    let path = dir.path().join("short.nii");
    std::fs::write(&path, "tiny").unwrap();
    expect_invalid_file(Volume::read(&path), "348");
    // Corrupt gzip.
    let path = dir.path().join("corrupt.nii.gz");
    std::fs::write(&path, [0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
    expect_invalid_file(Volume::read(&path), "gzip");
    // Truncated voxel data.
    let path = dir.path().join("truncated.nii");
    write_raw_nifti(&path, u8_file([4, 4, 4]), &[1u8; 10]);
    expect_invalid_file(Volume::read(&path), "truncated");
    // 2-D image (a single slice).
    let path = dir.path().join("slice.nii");
    write_raw_nifti(&path, u8_file([4, 4, 1]), &[1u8; 16]);
    expect_invalid_file(Volume::read(&path), "2-D");
    // Zero dimension.
    let path = dir.path().join("zero.nii");
    write_raw_nifti(
        &path,
        RawNifti {
            dims: [4, 0, 4],
            datatype: 2,
            bitpix: 8,
            big_endian: false,
            slope: 1.0,
            inter: 0.0,
        },
        &[],
    );
    expect_invalid_file(Volume::read(&path), "zero");
    // NaN voxels.
    let path = dir.path().join("nan.nii");
    let mut values = [1.0f32; 24];
    values[7] = f32::NAN;
    let payload: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    write_raw_nifti(
        &path,
        RawNifti {
            dims: [2, 3, 4],
            datatype: 16,
            bitpix: 32,
            big_endian: false,
            slope: 1.0,
            inter: 0.0,
        },
        &payload,
    );
    expect_invalid_file(Volume::read(&path), "NaN");
}

#[test]
fn bad_geometry_is_rejected() {
    let identity = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    for spacing in [
        [0.0, 1.0, 1.0],
        [1.0, -1.0, 1.0],
        [1.0, f64::NAN, 1.0],
        [1.0, 1.0, 25.0],
    ] {
        let err = Grid::from_lps([4, 4, 4], spacing, [0.0; 3], identity).unwrap_err();
        assert!(err.to_string().contains("voxel size"), "{err}");
    }
    let err = Grid::from_lps([4, 0, 4], [1.0; 3], [0.0; 3], identity).unwrap_err();
    assert!(err.to_string().contains("zero"), "{err}");
    let err = Grid::from_lps([4, 4, 4], [1.0; 3], [f64::INFINITY, 0.0, 0.0], identity).unwrap_err();
    assert!(err.to_string().contains("NaN or infinite"), "{err}");
    let singular = [[1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]];
    assert!(Grid::from_lps([4, 4, 4], [1.0; 3], [0.0; 3], singular).is_err());
    let grid = Grid::from_lps([2, 2, 2], [1.0; 3], [0.0; 3], identity).unwrap();
    let err = Volume::new(grid.clone(), vec![0.0; 7]).unwrap_err();
    assert!(err.to_string().contains("7 values"), "{err}");
    let err = Volume::new(grid.clone(), vec![f32::INFINITY; 8]).unwrap_err();
    assert!(err.to_string().contains("finite"), "{err}");
    let other = Grid::from_lps([2, 2, 2], [1.0; 3], [0.5, 0.0, 0.0], identity).unwrap();
    assert!(!grid.same_grid(&other, 1e-3));
    let err = grid
        .ensure_same_grid(&other, "the image", "the label file")
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("the label file is not on the grid of the image"),
        "{err}"
    );
    let bigger = Grid::from_lps([2, 2, 3], [1.0; 3], [0.0; 3], identity).unwrap();
    assert!(!grid.same_grid(&bigger, 1e-3));
    let dir = tempfile::tempdir().unwrap();
    let volume = Volume::new(grid, vec![0.0; 8]).unwrap();
    assert!(volume
        .write(dir.path().join("no_such_dir/out.nii.gz"))
        .is_err());
    assert!(volume.write(dir.path().join("out.mgz")).is_err());
}

/// Every shared volume: read, write, read again; identical data and affine,
/// orientation and voxel size as the manifest (computed with nibabel) says.
#[test]
fn real_volumes_round_trip() {
    let Some(root) = common::data_dir("real_volumes_round_trip") else {
        return;
    };
    let manifest = std::fs::read_to_string(root.join("MANIFEST.tsv")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut count = 0;
    for line in manifest.lines().skip(1) {
        let fields: Vec<&str> = line.split('\t').collect();
        let (relative, shape, voxel, orientation) = (fields[0], fields[1], fields[3], fields[4]);
        let started = std::time::Instant::now();
        let volume =
            Volume::read(root.join(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"));
        let read_time = started.elapsed();
        let dims: Vec<usize> = shape.split('x').map(|s| s.parse().unwrap()).collect();
        assert_eq!(volume.grid().dims().to_vec(), dims, "{relative}");
        assert_eq!(volume.grid().orientation_code(), orientation, "{relative}");
        let voxel: Vec<f64> = voxel.split('x').map(|s| s.parse().unwrap()).collect();
        for (axis, size) in voxel.iter().enumerate() {
            assert!(
                (volume.grid().spacing()[axis] - size).abs() < 1e-3,
                "{relative}"
            );
        }
        let out = dir.path().join("copy.nii.gz");
        volume.write(&out).unwrap();
        let back = Volume::read(&out).unwrap();
        assert!(
            back.data() == volume.data(),
            "{relative}: data differ after round trip"
        );
        assert_eq!(
            back.grid().voxel_to_ras(),
            volume.grid().voxel_to_ras(),
            "{relative}"
        );
        let (a, b) = (volume.grid().nifti_header(), back.grid().nifti_header());
        assert_eq!(
            (a.qform_code, a.sform_code, a.pixdim),
            (b.qform_code, b.sform_code, b.pixdim),
            "{relative}"
        );
        println!(
            "{relative}: {} {:?} read in {read_time:?}",
            volume.grid().orientation_code(),
            volume.grid().dims()
        );
        count += 1;
    }
    assert!(count >= 40, "only {count} volumes in the manifest");
}

/// A small valid little-endian float32 file (written by the library itself).
fn small_float_file(dir: &Path) -> (std::path::PathBuf, Volume) {
    let grid = oblique_grid([5, 6, 7]);
    let volume = Volume::new(grid.clone(), ramp(&grid)).unwrap();
    let path = dir.join("small.nii");
    volume.write(&path).unwrap();
    (path, volume)
}

/// Offsets and sizes of the numeric fields of a NIfTI-1 header (everything but the
/// byte-sized fields and the text fields), for byte swapping.
fn nifti1_numeric_fields() -> Vec<(usize, usize)> {
    let mut fields = vec![(0, 4), (32, 4), (36, 2)];
    fields.extend((0..8).map(|i| (40 + 2 * i, 2)));
    fields.extend([
        (56, 4),
        (60, 4),
        (64, 4),
        (68, 2),
        (70, 2),
        (72, 2),
        (74, 2),
    ]);
    fields.extend((0..8).map(|i| (76 + 4 * i, 4)));
    fields.extend([(108, 4), (112, 4), (116, 4), (120, 2)]);
    fields.extend((0..6).map(|i| (124 + 4 * i, 4)));
    fields.extend([(252, 2), (254, 2)]);
    fields.extend((0..18).map(|i| (256 + 4 * i, 4)));
    fields
}

/// The same image in NIfTI-2 layout (540-byte header, 64-bit fields).
fn to_nifti2(nifti1: &[u8]) -> Vec<u8> {
    let f32_at = |at: usize| f32::from_le_bytes(nifti1[at..at + 4].try_into().unwrap());
    let i16_at = |at: usize| i16::from_le_bytes(nifti1[at..at + 2].try_into().unwrap());
    let mut h = vec![0u8; 540];
    let mut put = |at: usize, bytes: &[u8]| h[at..at + bytes.len()].copy_from_slice(bytes);
    put(0, &540i32.to_le_bytes());
    put(4, b"n+2\0\r\n\x1a\n");
    put(12, &i16_at(70).to_le_bytes());
    put(14, &i16_at(72).to_le_bytes());
    for i in 0..8 {
        put(16 + 8 * i, &i64::from(i16_at(40 + 2 * i)).to_le_bytes());
    }
    for i in 0..8 {
        put(104 + 8 * i, &f64::from(f32_at(76 + 4 * i)).to_le_bytes());
    }
    put(168, &544i64.to_le_bytes());
    put(176, &f64::from(f32_at(112)).to_le_bytes());
    put(184, &f64::from(f32_at(116)).to_le_bytes());
    put(344, &i32::from(i16_at(252)).to_le_bytes());
    put(348, &i32::from(i16_at(254)).to_le_bytes());
    for i in 0..18 {
        put(352 + 8 * i, &f64::from(f32_at(256 + 4 * i)).to_le_bytes());
    }
    put(500, &[nifti1[123], 0, 0, 0]);
    let mut bytes = h;
    bytes.extend_from_slice(&[0; 4]);
    bytes.extend_from_slice(&nifti1[352..]);
    bytes
}

#[test]
fn big_endian_and_nifti2_files_read_as_the_little_endian_nifti1_original() {
    let dir = tempfile::tempdir().unwrap();
    let (path, original) = small_float_file(dir.path());
    let little = std::fs::read(&path).unwrap();
    // Big-endian: every numeric header field and every voxel byte-swapped.
    let mut big = little.clone();
    for (at, size) in nifti1_numeric_fields() {
        big[at..at + size].reverse();
    }
    for voxel in big[352..].chunks_exact_mut(4) {
        voxel.reverse();
    }
    let nifti2 = to_nifti2(&little);
    for (name, bytes) in [("big.nii", big), ("two.nii", nifti2)] {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let read = Volume::read(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(read.data(), original.data(), "{name}");
        assert_eq!(read.grid().dims(), original.grid().dims(), "{name}");
        let (a, b) = (read.grid().voxel_to_ras(), original.grid().voxel_to_ras());
        for row in 0..3 {
            for col in 0..4 {
                assert!(
                    (a[row][col] - b[row][col]).abs() < 1e-4,
                    "{name}: {a:?} {b:?}"
                );
            }
        }
    }
}

#[test]
fn hostile_headers_are_named_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let (path, original) = small_float_file(dir.path());
    let good = std::fs::read(&path).unwrap();
    let with = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = good.clone();
        edit(&mut bytes);
        bytes
    };
    let vox_offset = |value: f32| {
        with(&move |b: &mut Vec<u8>| b[108..112].copy_from_slice(&value.to_le_bytes()))
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        // NaN used to read the header as voxels (offset 0).
        (
            "vox_offset NaN",
            vox_offset(f32::NAN),
            "vox_offset NaN is not a valid voxel data offset",
        ),
        (
            "vox_offset 0",
            vox_offset(0.0),
            "vox_offset 0 is not a valid",
        ),
        (
            "vox_offset 1",
            vox_offset(1.0),
            "vox_offset 1 is not a valid",
        ),
        (
            "vox_offset -352",
            vox_offset(-352.0),
            "vox_offset -352 is not a valid",
        ),
        ("vox_offset 352.5", vox_offset(352.5), "whole number"),
        ("vox_offset 1e30", vox_offset(1e30), "16 MiB"),
        (
            "dim[0] 8",
            with(&|b| b[40..42].copy_from_slice(&8i16.to_le_bytes())),
            "dim[0] = 8 is not a valid number of dimensions",
        ),
        (
            "negative dim",
            with(&|b| b[42..44].copy_from_slice(&(-5i16).to_le_bytes())),
            "dim[1] = -5",
        ),
        (
            "DT_BINARY",
            with(&|b| b[70..72].copy_from_slice(&1i16.to_le_bytes())),
            "DT_BINARY",
        ),
        (
            "DT_RGB24",
            with(&|b| b[70..72].copy_from_slice(&128i16.to_le_bytes())),
            "DT_RGB24",
        ),
        (
            "unknown datatype",
            with(&|b| b[70..72].copy_from_slice(&77i16.to_le_bytes())),
            "datatype code 77",
        ),
        (
            "2^45 voxels",
            with(&|b| {
                for axis in 0..3 {
                    b[42 + 2 * axis..44 + 2 * axis].copy_from_slice(&32767i16.to_le_bytes())
                }
            }),
            "too large",
        ),
        (
            "analyze",
            with(&|b| b[344..348].copy_from_slice(b"\0\0\0\0")),
            "Analyze",
        ),
        (
            "bad sizeof_hdr",
            with(&|b| b[0..4].copy_from_slice(&349i32.to_le_bytes())),
            "header size field is 349",
        ),
        ("truncated", good[..good.len() - 3].to_vec(), "truncated"),
    ];
    for (label, bytes, needle) in cases {
        let path = dir.path().join("hostile.nii");
        std::fs::write(&path, &bytes).unwrap();
        match Volume::read(&path) {
            Err(Error::InvalidFile { reason, .. }) => {
                assert!(
                    reason.contains(needle),
                    "{label}: {reason:?} lacks {needle:?}"
                )
            }
            other => panic!("{label}: expected InvalidFile, got {other:?}"),
        }
    }
    // A NIfTI-2 header with a bad offset is named the same way.
    let mut nifti2 = to_nifti2(&good);
    nifti2[168..176].copy_from_slice(&(-352i64).to_le_bytes());
    let path = dir.path().join("two.nii");
    std::fs::write(&path, &nifti2).unwrap();
    let message = Volume::read(&path).unwrap_err().to_string();
    assert!(message.contains("vox_offset -352"), "{message}");
    drop(original);
}

#[test]
fn gzip_streams_inflate_only_to_the_declared_size() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let (path, original) = small_float_file(dir.path());
    let good = std::fs::read(&path).unwrap();
    let gzip = |payload: &[&[u8]], extra_zeros: usize| {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        for part in payload {
            encoder.write_all(part).unwrap();
        }
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..extra_zeros / zeros.len() {
            encoder.write_all(&zeros).unwrap();
        }
        encoder.finish().unwrap()
    };
    // A little trailing padding is fine.
    let padded = dir.path().join("padded.nii.gz");
    std::fs::write(&padded, gzip(&[&good, &[0u8; 1000]], 0)).unwrap();
    assert_eq!(Volume::read(&padded).unwrap().data(), original.data());
    // A bomb: 256 MiB of zeros behind a header that declares 840 bytes of voxels. The
    // reader must stop at the declared size plus the 1 MiB margin.
    let bomb = dir.path().join("bomb.nii.gz");
    let compressed = gzip(&[&good], 256 << 20);
    assert!(compressed.len() < 1 << 20, "{} bytes", compressed.len());
    std::fs::write(&bomb, &compressed).unwrap();
    let started = std::time::Instant::now();
    match Volume::read(&bomb) {
        Err(Error::InvalidFile { reason, .. }) => {
            assert!(reason.contains("inflates to more than"), "{reason}");
            assert!(
                reason.contains(&format!("stopped at {} bytes", good.len() + (1 << 20) + 1)),
                "{reason}"
            );
        }
        other => panic!("bomb accepted: {other:?}"),
    }
    // Reading 256 MiB would take far longer than stopping after 1 MiB does.
    println!("bomb refused in {:.3} s", started.elapsed().as_secs_f64());
}

#[test]
fn label_maps_are_written_atomically_and_only_with_a_nifti_name() {
    let dir = tempfile::tempdir().unwrap();
    let grid = oblique_grid([5, 6, 7]);
    let labels = LabelVolume::zeros(grid);
    let path = dir.path().join("labels.nii.gz");
    std::fs::write(&path, b"old content").unwrap();
    // Refused names leave the folder untouched.
    for bad in ["labels.nrrd", "labels.nii.zip", "labels"] {
        let message = labels.write(dir.path().join(bad)).unwrap_err().to_string();
        assert!(message.contains("must end in .nii or .nii.gz"), "{message}");
    }
    labels.write(&path).unwrap();
    assert_eq!(Volume::read(&path).unwrap().grid().dims(), [5, 6, 7]);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["labels.nii.gz"],
        "no temporary or partial file is left"
    );
}
