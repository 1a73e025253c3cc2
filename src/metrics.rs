//! Segmentation metrics: Dice, IoU, HD95 and ASSD in millimetres.
//!
//! All metrics compare a predicted and a reference [`LabelVolume`] on the same
//! grid, one class at a time.
//!
//! * **Dice** `2|A∩B| / (|A|+|B|)` and **IoU** `|A∩B| / |A∪B|`.
//! * **Surfaces** are the voxels of a structure with at least one 6-neighbour
//!   outside it (or on the volume border). Distances are Euclidean between voxel
//!   centres in millimetres, using the grid's voxel size (exact separable
//!   distance transform, anisotropic voxels allowed).
//! * **HD95** is `max(p95(d(A→B)), p95(d(B→A)))` over surface voxels (the MONAI /
//!   medpy definition); **ASSD** is the mean of all surface-to-surface distances
//!   in both directions.
//!
//! # Empty structures
//!
//! * Both empty: the structure is absent from both, every metric is `None` and
//!   it is left out of the means (a perfect "nothing" says nothing about accuracy).
//! * Exactly one empty: Dice = IoU = 0 (counted in the means); HD95 and ASSD are
//!   undefined (`None`) and left out of the distance means.
//!
//! Means are over the structures where the metric is defined; `None` if none is.

use crate::error::Result;
use crate::labels::NUM_CLASSES;
use crate::volume::LabelVolume;

/// Metrics of one structure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StructureMetrics {
    /// Class id (1..=12).
    pub class: u8,
    /// Voxels in the prediction.
    pub predicted_voxels: usize,
    /// Voxels in the reference.
    pub reference_voxels: usize,
    /// Dice similarity coefficient (0..=1).
    pub dice: Option<f64>,
    /// Intersection over union (0..=1).
    pub iou: Option<f64>,
    /// 95th percentile Hausdorff distance, mm.
    pub hd95_mm: Option<f64>,
    /// Average symmetric surface distance, mm.
    pub assd_mm: Option<f64>,
}

/// Metrics of every structure and their means.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// One entry per class 1..=12.
    pub structures: Vec<StructureMetrics>,
    /// Mean Dice over structures where defined.
    pub mean_dice: Option<f64>,
    /// Mean IoU over structures where defined.
    pub mean_iou: Option<f64>,
    /// Mean HD95 (mm) over structures where defined.
    pub mean_hd95_mm: Option<f64>,
    /// Mean ASSD (mm) over structures where defined.
    pub mean_assd_mm: Option<f64>,
}

/// Evaluates `predicted` against `reference` for classes 1..=12. Errors if the
/// two label maps are not on the same grid.
pub fn evaluate(predicted: &LabelVolume, reference: &LabelVolume) -> Result<Evaluation> {
    reference.grid().ensure_same_grid(
        predicted.grid(),
        "the reference labels",
        "the predicted labels",
    )?;
    let structures: Vec<StructureMetrics> = (1..NUM_CLASSES as u8)
        .map(|class| structure_metrics(predicted, reference, class))
        .collect();
    let mean = |f: fn(&StructureMetrics) -> Option<f64>| {
        let values: Vec<f64> = structures.iter().filter_map(f).collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    };
    Ok(Evaluation {
        mean_dice: mean(|s| s.dice),
        mean_iou: mean(|s| s.iou),
        mean_hd95_mm: mean(|s| s.hd95_mm),
        mean_assd_mm: mean(|s| s.assd_mm),
        structures,
    })
}

/// Metrics of one class (both volumes must be on the same grid; checked by [`evaluate`]).
pub fn structure_metrics(
    predicted: &LabelVolume,
    reference: &LabelVolume,
    class: u8,
) -> StructureMetrics {
    let (a, b) = (predicted.data(), reference.data());
    let (mut na, mut nb, mut both) = (0usize, 0usize, 0usize);
    for (&x, &y) in a.iter().zip(b) {
        let (in_a, in_b) = (x == class, y == class);
        na += usize::from(in_a);
        nb += usize::from(in_b);
        both += usize::from(in_a && in_b);
    }
    let mut metrics = StructureMetrics {
        class,
        predicted_voxels: na,
        reference_voxels: nb,
        dice: None,
        iou: None,
        hd95_mm: None,
        assd_mm: None,
    };
    if na == 0 && nb == 0 {
        return metrics;
    }
    metrics.dice = Some(2.0 * both as f64 / (na + nb) as f64);
    metrics.iou = Some(both as f64 / (na + nb - both) as f64);
    if na > 0 && nb > 0 {
        let (hd95, assd) = surface_distances(predicted, reference, class);
        metrics.hd95_mm = Some(hd95);
        metrics.assd_mm = Some(assd);
    }
    metrics
}

/// (HD95, ASSD) between the surfaces of `class` in two non-empty label maps.
fn surface_distances(a: &LabelVolume, b: &LabelVolume, class: u8) -> (f64, f64) {
    let dims = a.grid().dims();
    let spacing = a.grid().spacing();
    // Work in the bounding box of both structures: every surface voxel lies in it,
    // so distances computed inside it are exact.
    let mut low = dims;
    let mut high = [0usize; 3];
    for (index, (&x, &y)) in a.data().iter().zip(b.data()).enumerate() {
        if x == class || y == class {
            let v = [
                index % dims[0],
                index / dims[0] % dims[1],
                index / (dims[0] * dims[1]),
            ];
            for axis in 0..3 {
                low[axis] = low[axis].min(v[axis]);
                high[axis] = high[axis].max(v[axis]);
            }
        }
    }
    let boxed = Box3 { low, high, dims };
    let surface_a = boxed.surface(a.data(), class);
    let surface_b = boxed.surface(b.data(), class);
    let distance_to_b = boxed.distance_transform(&surface_b, spacing);
    let distance_to_a = boxed.distance_transform(&surface_a, spacing);
    let mut a_to_b: Vec<f64> = surface_a
        .iter()
        .zip(&distance_to_b)
        .filter(|(&s, _)| s)
        .map(|(_, &d)| d.sqrt())
        .collect();
    let mut b_to_a: Vec<f64> = surface_b
        .iter()
        .zip(&distance_to_a)
        .filter(|(&s, _)| s)
        .map(|(_, &d)| d.sqrt())
        .collect();
    let total: f64 = a_to_b.iter().sum::<f64>() + b_to_a.iter().sum::<f64>();
    let assd = total / (a_to_b.len() + b_to_a.len()) as f64;
    let hd95 = percentile95(&mut a_to_b).max(percentile95(&mut b_to_a));
    (hd95, assd)
}

fn percentile95(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    // Linear interpolation between closest ranks (numpy's default).
    let position = 0.95 * (values.len() - 1) as f64;
    let lower = position.floor() as usize;
    let upper = (lower + 1).min(values.len() - 1);
    let fraction = position - lower as f64;
    values[lower] + fraction * (values[upper] - values[lower])
}

/// A sub-box of the volume: `low..=high` per axis.
struct Box3 {
    low: [usize; 3],
    high: [usize; 3],
    dims: [usize; 3],
}

impl Box3 {
    fn size(&self) -> [usize; 3] {
        [0, 1, 2].map(|a| self.high[a] - self.low[a] + 1)
    }

    /// Surface voxels of `class` inside the box (box-local, x fastest).
    fn surface(&self, data: &[u8], class: u8) -> Vec<bool> {
        let size = self.size();
        let dims = self.dims;
        let at = |i: usize, j: usize, k: usize| data[i + dims[0] * (j + dims[1] * k)] == class;
        let mut surface = vec![false; size.iter().product()];
        for k in 0..size[2] {
            for j in 0..size[1] {
                for i in 0..size[0] {
                    let (x, y, z) = (i + self.low[0], j + self.low[1], k + self.low[2]);
                    if !at(x, y, z) {
                        continue;
                    }
                    let border = x == 0
                        || y == 0
                        || z == 0
                        || x + 1 == dims[0]
                        || y + 1 == dims[1]
                        || z + 1 == dims[2];
                    let exposed = border
                        || !at(x - 1, y, z)
                        || !at(x + 1, y, z)
                        || !at(x, y - 1, z)
                        || !at(x, y + 1, z)
                        || !at(x, y, z - 1)
                        || !at(x, y, z + 1);
                    surface[i + size[0] * (j + size[1] * k)] = exposed;
                }
            }
        }
        surface
    }

    /// Squared Euclidean distance (mm²) from each box voxel to the nearest
    /// feature voxel (exact, separable: Felzenszwalb & Huttenlocher 2012).
    fn distance_transform(&self, features: &[bool], spacing: [f64; 3]) -> Vec<f64> {
        let size = self.size();
        let mut field: Vec<f64> = features
            .iter()
            .map(|&f| if f { 0.0 } else { f64::INFINITY })
            .collect();
        let strides = [1, size[0], size[0] * size[1]];
        let longest = *size.iter().max().expect("three axes");
        let mut line = vec![0.0; longest];
        let mut output = vec![0.0; longest];
        let mut hull_positions = vec![0usize; longest];
        let mut hull_bounds = vec![0.0; longest + 1];
        for axis in 0..3 {
            let n = size[axis];
            let weight = spacing[axis] * spacing[axis];
            let (other1, other2) = match axis {
                0 => (1, 2),
                1 => (0, 2),
                _ => (0, 1),
            };
            for b in 0..size[other2] {
                for a in 0..size[other1] {
                    let start = a * strides[other1] + b * strides[other2];
                    for (t, value) in line[..n].iter_mut().enumerate() {
                        *value = field[start + t * strides[axis]];
                    }
                    squared_edt_1d(
                        &line[..n],
                        weight,
                        &mut output[..n],
                        &mut hull_positions,
                        &mut hull_bounds,
                    );
                    for (t, &value) in output[..n].iter().enumerate() {
                        field[start + t * strides[axis]] = value;
                    }
                }
            }
        }
        field
    }
}

/// 1-D squared distance transform with sample spacing² `weight`: out[q] =
/// min_p (f[p] + weight (q-p)²), lower envelope of parabolas.
fn squared_edt_1d(f: &[f64], weight: f64, out: &mut [f64], v: &mut [usize], z: &mut [f64]) {
    let n = f.len();
    let finite: Vec<usize> = (0..n).filter(|&p| f[p].is_finite()).collect();
    if finite.is_empty() {
        out.fill(f64::INFINITY);
        return;
    }
    let mut k = 0usize;
    v[0] = finite[0];
    z[0] = f64::NEG_INFINITY;
    z[1] = f64::INFINITY;
    let intersect = |p: usize, q: usize| {
        let (p, q) = (p as f64, q as f64);
        ((f[q as usize] / weight + q * q) - (f[p as usize] / weight + p * p)) / (2.0 * (q - p))
    };
    for &q in &finite[1..] {
        let mut s = intersect(v[k], q);
        while s <= z[k] {
            k -= 1;
            s = intersect(v[k], q);
        }
        k += 1;
        v[k] = q;
        z[k] = s;
        z[k + 1] = f64::INFINITY;
    }
    k = 0;
    for (q, value) in out.iter_mut().enumerate() {
        while z[k + 1] < q as f64 {
            k += 1;
        }
        let d = q as f64 - v[k] as f64;
        *value = weight * d * d + f[v[k]];
    }
}
