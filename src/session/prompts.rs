//! Prompts: points and boxes per structure and slice, their model tensors, and the
//! constraints that make sure the interactive head never ignores one.

use tch::Tensor;

use super::{check_structure, stack_index, Session, VolumeState};
use crate::error::{Error, Result};
use crate::model::Prompts;

/// Most point prompts per structure and slice: SAM is trained with a handful, and each
/// one costs decoder time on every later update of that slice.
pub const MAX_POINTS_PER_SLICE: usize = 64;

/// A point prompt on a slice, in model-input pixels (the centre of pixel `(x, y)` at
/// `(x + 0.5, y + 0.5)`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointPrompt {
    /// Column coordinate.
    pub x: f64,
    /// Row coordinate.
    pub y: f64,
    /// Inside (true) or outside (false) the structure.
    pub positive: bool,
}

/// The prompts of one structure on one slice: what a user gives a session and what
/// training samples from the ground truth.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlicePrompts {
    /// Clicks, in the order given.
    pub points: Vec<PointPrompt>,
    /// (x0, y0, x1, y1) in model-input pixels.
    pub bounding_box: Option<[f64; 4]>,
}

impl SlicePrompts {
    /// The model prompts of a batch on `device`, one row per entry: points when any
    /// entry has points (shorter lists padded with label -1 at (0, 0)), boxes when every
    /// entry has a box. Sessions, training and interactive training all build their
    /// prompt tensors here.
    pub fn batch(prompts: &[&SlicePrompts], device: tch::Device) -> Prompts {
        let count = prompts.len() as i64;
        let longest = prompts.iter().map(|p| p.points.len()).max().unwrap_or(0);
        let mut model_prompts = Prompts::none();
        if longest > 0 {
            let mut coords = Vec::with_capacity(prompts.len() * longest * 2);
            let mut labels = Vec::with_capacity(prompts.len() * longest);
            for prompt in prompts {
                for k in 0..longest {
                    match prompt.points.get(k) {
                        Some(p) => {
                            coords.extend_from_slice(&[p.x as f32, p.y as f32]);
                            labels.push(if p.positive { 1.0f32 } else { 0.0 });
                        }
                        None => {
                            coords.extend_from_slice(&[0.0, 0.0]);
                            labels.push(-1.0);
                        }
                    }
                }
            }
            model_prompts = Prompts::from_points(
                Tensor::from_slice(&coords)
                    .view([count, longest as i64, 2])
                    .to_device(device),
                Tensor::from_slice(&labels)
                    .view([count, longest as i64])
                    .to_device(device),
            );
        }
        let boxes: Option<Vec<f32>> = prompts
            .iter()
            .map(|p| p.bounding_box.map(|b| b.map(|v| v as f32)))
            .collect::<Option<Vec<[f32; 4]>>>()
            .map(|boxes| boxes.concat());
        if let Some(values) = boxes.filter(|v| !v.is_empty()) {
            model_prompts.boxes = Some(
                Tensor::from_slice(&values)
                    .view([count, 4])
                    .to_device(device),
            );
        }
        model_prompts
    }
}

/// Radius (model-input pixels) around each click within which clicks without a box
/// may change the result (focused refinement as in FocalClick): outside, the structure
/// keeps its automatic result, so a click corrects where it is given and nowhere else.
/// Chosen on the validation subjects (models/README.md, interactive head): mean plane
/// Dice after 1 / 3 / 5 clicks 0.738 / 0.771 / 0.787 with 12 (6 mm), 0.729 / 0.769 /
/// 0.787 with 16 and 0.724 / 0.768 / 0.786 with 24.
pub(super) const CLICK_FOCUS_RADIUS_PX: f64 = 12.0;

/// A click reaches this many times its distance to the automatic result's border (at
/// least as far as its seeds, at most [`CLICK_FOCUS_RADIUS_PX`]). On the validation
/// subjects (stage-9 file, every 8th plane) mean plane Dice after 1 / 3 / 5 clicks: 0.749
/// / 0.779 / 0.795 with the fixed radius, 0.763 / 0.786 / 0.802 with 2, 0.764 / 0.784 /
/// 0.802 with 1.5; the right thalamus after one click 0.795 / 0.839 / 0.839 (a negative
/// click near the border of a small cross-section no longer removes all of it). Measured
/// again in session 13, from the border of the mask the clicks before left: 2 / 1.5 / 1
/// gave 0.780 / 0.817 / 0.849, 0.785 / 0.826 / 0.856 and 0.786 / 0.826 / 0.856, but on
/// another set of planes 1 lost to 2 (0.871 / 0.891 / 0.910 against 0.870 / 0.896 /
/// 0.913): no consistent difference, 2 kept.
pub(super) const CLICK_REACH_PER_BORDER_DISTANCE: f64 = 2.0;

/// One click's correction of `base` (binary log-odds `[m, m]`: the automatic result, or
/// the mask the clicks before it left) with `head`, the interactive head's mask for the
/// clicks so far. The click corrects the error it lies in and nothing else:
///
/// - `base` takes `head` only where the two disagree in the click's direction (a
///   positive click: the head calls the pixel the structure and `base` does not; a
///   negative click: the reverse), in the region of such pixels 4-connected to the
///   click (seeded next to it) and within its reach; elsewhere `base` stays, so where
///   the head merely draws a border differently, the automatic result (every averaged
///   view, more accurate than the head's single view) is kept;
/// - the click then decides the pixels around it outright, as far as
///   [`CLICK_CONSTRAINT_RADIUS_PX`] but only those nearer than the nearest pixel `base`
///   already gives the click's answer (always those the clicked voxel is read from).
///
/// That distance to `base`'s border measures the error the click sits in: a click at the
/// centre of a thin error at the edge of a small cross-section lies close to the border,
/// so it decides little and reaches [`CLICK_REACH_PER_BORDER_DISTANCE`] times that
/// distance; a click deep in a missed or false region decides 2 mm and reaches as far as
/// [`CLICK_FOCUS_RADIUS_PX`].
pub(super) fn correct_with_click(
    head: &Tensor,
    base: &Tensor,
    click: &PointPrompt,
    scale: f64,
) -> Result<Tensor> {
    let side = head.size()[1];
    let head = Vec::<f32>::try_from(head.flatten(0, -1))?;
    let mut values = Vec::<f32>::try_from(base.flatten(0, -1))?;
    let distance = |index: usize| {
        let (x, y) = pixel_centre(index, side, scale);
        click_distance(x, y, click)
    };
    let answered = |value: f32| (value > 0.0) == click.positive;
    let border = (0..values.len())
        .filter(|&i| answered(values[i]))
        .map(distance)
        .fold(f64::INFINITY, f64::min);
    let decided_radius = border.min(CLICK_CONSTRAINT_RADIUS_PX);
    let seed_radius = decided_radius + scale;
    let reach =
        (CLICK_REACH_PER_BORDER_DISTANCE * border).clamp(seed_radius, CLICK_FOCUS_RADIUS_PX);
    let disagree: Vec<bool> = (0..head.len())
        .map(|i| answered(head[i]) && !answered(values[i]) && distance(i) <= reach)
        .collect();
    let seeds = (0..head.len()).filter(|&i| disagree[i] && distance(i) <= seed_radius);
    let corrected = connected_to(&disagree, side as usize, seeds);
    // The pixels the clicked voxel's label is interpolated from (those within one pixel
    // of the click along each axis), whatever the voxel size: the clicked voxel always
    // takes the click's answer.
    let under_click = |index: usize| {
        let (x, y) = pixel_centre(index, side, scale);
        (x - (click.x + 0.5)).abs() < scale && (y - (click.y + 0.5)).abs() < scale
    };
    for (i, value) in values.iter_mut().enumerate() {
        if corrected[i] {
            *value = head[i];
        }
        let d = distance(i);
        if under_click(i) || (d < border && d <= CLICK_CONSTRAINT_RADIUS_PX) {
            *value = decided(*value, click.positive);
        }
    }
    Ok(Tensor::from_slice(&values).view([side, side]))
}

/// The pixels of `region` (row-major, `side` × `side`) 4-connected within it to one of
/// `seeds` (pixels of `region`).
fn connected_to(region: &[bool], side: usize, seeds: impl Iterator<Item = usize>) -> Vec<bool> {
    let mut reached = vec![false; region.len()];
    let mut stack: Vec<usize> = seeds.collect();
    for &seed in &stack {
        reached[seed] = true;
    }
    while let Some(index) = stack.pop() {
        for next in four_neighbours(index, side, side) {
            if region[next] && !reached[next] {
                reached[next] = true;
                stack.push(next);
            }
        }
    }
    reached
}

/// The 4-neighbours of pixel `index` of a row-major `width` × `height` map.
pub(crate) fn four_neighbours(
    index: usize,
    width: usize,
    height: usize,
) -> impl Iterator<Item = usize> {
    let (x, y) = (index % width, index / width);
    [
        (x > 0).then(|| index - 1),
        (x + 1 < width).then(|| index + 1),
        (y > 0).then(|| index - width),
        (y + 1 < height).then(|| index + width),
    ]
    .into_iter()
    .flatten()
}

/// The centre, in model-input pixels, of pixel `index` of a `[side, side]` mask whose
/// pixels cover `scale` model-input pixels each.
fn pixel_centre(index: usize, side: i64, scale: f64) -> (f64, f64) {
    let (x, y) = ((index as i64 % side) as f64, (index as i64 / side) as f64);
    ((x + 0.5) * scale, (y + 0.5) * scale)
}

/// Whether model-input point (x, y) lies within `radius` model-input pixels of the
/// centre of the pixel clicked at `point`.
fn near_click(x: f64, y: f64, point: &PointPrompt, radius: f64) -> bool {
    click_distance(x, y, point) <= radius
}

/// Distance (model-input pixels) from model-input point (x, y) to the centre of the pixel
/// clicked at `point`.
fn click_distance(x: f64, y: f64, point: &PointPrompt) -> f64 {
    (x - (point.x + 0.5)).hypot(y - (point.y + 0.5))
}

/// Whether model-input point (x, y) lies within `margin` model-input pixels of the
/// centres of box `bbox`'s outermost pixels: with [`box_margin_px`], where a
/// box prompt's mask may reach; with [`BOX_PIXELS_MARGIN_PX`], on the box's own pixels.
fn within_box(x: f64, y: f64, [x0, y0, x1, y1]: [f64; 4], margin: f64) -> bool {
    let m = margin;
    x >= x0 + 0.5 - m && x <= x1 + 0.5 + m && y >= y0 + 0.5 - m && y <= y1 + 0.5 + m
}

/// How far (model-input pixels, 3 mm for the default model) each side of a drawn box may
/// lie from the automatic result's extent for the box to confirm that result (a voxel and
/// a pixel where the image's voxels are coarser).
pub(super) const BOX_AGREEMENT_PX: f64 = 6.0;

/// Whether a drawn box (and no click) confirms the automatic result: the structure's
/// automatic pixels (`automatic` log-odds > 0, `[m, m]`) lie within the box's constraint
/// margin (see [`box_margin_px`]; `voxel_px`: the image's in-plane voxel size in
/// model-input pixels) and reach each of its sides within [`BOX_AGREEMENT_PX`]. Such a box says the
/// automatic result is where the structure is, so it stays as it is (the head's mask,
/// decoded from one view and fitted to the box, redraws a border that eight averaged
/// views drew better) — provided the head's mask overlaps it enough (the session checks
/// that: an automatic fragment can span a box it does not fill).
pub(super) fn box_confirms(
    automatic: &Tensor,
    prompts: &SlicePrompts,
    scale: f64,
    voxel_px: f64,
) -> Result<bool> {
    let Some(bbox) = prompts.bounding_box.filter(|_| prompts.points.is_empty()) else {
        return Ok(false);
    };
    let side = automatic.size()[1];
    let odds = Vec::<f32>::try_from(automatic.flatten(0, -1))?;
    let structure: Vec<(f32, f64, f64)> = odds
        .iter()
        .enumerate()
        .filter(|(_, &v)| v > 0.0)
        .map(|(index, &v)| {
            let (x, y) = pixel_centre(index, side, scale);
            (v, x, y)
        })
        .collect();
    if structure
        .iter()
        .any(|&(_, x, y)| !within_box(x, y, bbox, box_margin_px(voxel_px)))
    {
        return Ok(false);
    }
    let Some(extent) = mask_extent(&structure, 0.0) else {
        return Ok(false);
    };
    // Box sides at the outer edges of its pixels; the extent at pixel centres, half an
    // output pixel inside the automatic result's edge.
    let half = scale / 2.0;
    let sides = [
        (extent[0] - half) - bbox[0],
        (extent[1] - half) - bbox[1],
        (bbox[2] + 1.0) - (extent[2] + half),
        (bbox[3] + 1.0) - (extent[3] + half),
    ];
    let agreement = BOX_AGREEMENT_PX.max(voxel_px + 1.0);
    Ok(sides.iter().all(|gap| gap.abs() <= agreement))
}

/// Margin for [`within_box`] that covers exactly the box's pixels (half a pixel beyond
/// the outermost centres).
const BOX_PIXELS_MARGIN_PX: f64 = 0.5;

/// Largest logit offset [`fit_to_box`] adds or removes (in steps of a quarter): enough
/// to move a mask edge to the box where the model was unsure, too little to fill a
/// loose box with tissue the model calls unlikely (p < 0.12). Chosen on the validation
/// subjects (models/README.md): box plane Dice 0.690 / 0.698 / 0.710 / 0.714 with
/// 0 / 1 / 2 / 3; the gain flattens while the risk with loose boxes grows.
const BOX_FIT_MAX_OFFSET: f32 = 2.0;

/// The pixels of a mask (binary logits `[m, m]`, pixel `(x, y)` covering model-input
/// pixels `scale·x .. scale·(x+1)`) as (logit, centre x, centre y) whose centre lies in
/// `bbox` grown by `margin`.
fn pixel_centres(
    mask: &Tensor,
    scale: f64,
    bbox: [f64; 4],
    margin: f64,
) -> Result<Vec<(f32, f64, f64)>> {
    let side = mask.size()[1];
    let values = Vec::<f32>::try_from(mask.flatten(0, -1))?;
    Ok(values
        .iter()
        .enumerate()
        .filter_map(|(index, &v)| {
            let (x, y) = pixel_centre(index, side, scale);
            within_box(x, y, bbox, margin).then_some((v, x, y))
        })
        .collect())
}

/// The extent (left, top, right, bottom pixel centres) of the pixels whose logit plus
/// `offset` is positive; None when there are none.
fn mask_extent(pixels: &[(f32, f64, f64)], offset: f32) -> Option<[f64; 4]> {
    pixels
        .iter()
        .filter(|&&(v, _, _)| v + offset > 0.0)
        .fold(None, |extent, &(_, x, y)| {
            let [x0, y0, x1, y1] = extent.unwrap_or([x, y, x, y]);
            Some([x0.min(x), y0.min(y), x1.max(x), y1.max(y)])
        })
}

/// How far (model-input pixels, summed over the four sides) `extent` lies from the box's
/// sides, beyond `slack` on each side.
fn box_distance(extent: [f64; 4], [x0, y0, x1, y1]: [f64; 4], slack: f64) -> f64 {
    let target = [x0 + 0.5, y0 + 0.5, x1 + 0.5, y1 + 0.5];
    extent
        .iter()
        .zip(target)
        .map(|(e, t)| ((e - t).abs() - slack).max(0.0))
        .sum()
}

/// Boxes up to this area (mm²) are taken as drawn around a small cross-section (a
/// structure's end slices), where the model's 8 mm image tokens often see nothing: the
/// fitted mask then covers at least [`SMALL_BOX_MIN_FILL`] of the box. Larger boxes may
/// be drawn loosely and are left to the fit alone.
const SMALL_BOX_MAX_AREA_MM2: f64 = 200.0;

/// Least fraction of a small box (see [`SMALL_BOX_MAX_AREA_MM2`]) the mask covers: a
/// compact cross-section fills about half to four fifths of its bounding box (an ellipse
/// π/4). Chosen on the validation subjects (models/README.md; every box filled, before
/// the area limit): box plane Dice 0.724 / 0.742 / 0.741 / 0.742 / 0.732 with fractions
/// 0 / 0.4 / 0.5 / 0.6 / 0.7; from 0.6 on, the largest cross-sections lose.
const SMALL_BOX_MIN_FILL: f64 = 0.5;

/// The box prompt's mask (binary logits `[m, m]`, as in [`constrain_to_prompts`]) shifted
/// by the logit offset whose mask (> 0, inside the box) reaches closest to the box's
/// four sides: a box drawn around a structure says how far it extends, which the
/// model's own threshold does not know. A side within a voxel (`voxel_px` model-input
/// pixels) of the mask counts as reached: a box drawn by hand through voxel centres is
/// that uncertain, and fitting the mask to that noise redrew borders the automatic
/// result drew right. Among equally close offsets the smallest in
/// size wins, so a mask that already fits the box is left as it is. A small box
/// (model-input pixels of `pixel_mm` mm) is then filled to at least
/// [`SMALL_BOX_MIN_FILL`] with the pixels the model finds likeliest.
pub(super) fn fit_to_box(
    mask: &Tensor,
    prompts: &SlicePrompts,
    scale: f64,
    pixel_mm: f64,
    voxel_px: f64,
) -> Result<Tensor> {
    let Some(bbox) = prompts.bounding_box else {
        return Ok(mask.shallow_clone());
    };
    let inside = pixel_centres(mask, scale, bbox, box_margin_px(voxel_px))?;
    let mismatch = |offset: f32| {
        mask_extent(&inside, offset).map_or(f64::INFINITY, |e| box_distance(e, bbox, voxel_px))
    };
    let steps = (BOX_FIT_MAX_OFFSET * 4.0).round() as i32;
    let mut best = (mismatch(0.0), 0.0f32);
    for step in 1..=steps {
        for offset in [step as f32 * 0.25, -(step as f32) * 0.25] {
            let score = mismatch(offset);
            if score < best.0 {
                best = (score, offset);
            }
        }
    }
    let offset = small_box_fill_offset(&inside, bbox, pixel_mm, best.1);
    Ok(mask + f64::from(offset))
}

/// `offset`, or a larger one when the box is small and the mask (logits plus `offset`)
/// covers less than [`SMALL_BOX_MIN_FILL`] of the pixels whose centres lie in it.
fn small_box_fill_offset(
    pixels: &[(f32, f64, f64)],
    bbox: [f64; 4],
    pixel_mm: f64,
    offset: f32,
) -> f32 {
    let [x0, y0, x1, y1] = bbox;
    let area_mm2 = (x1 - x0 + 1.0) * (y1 - y0 + 1.0) * pixel_mm * pixel_mm;
    if area_mm2 > SMALL_BOX_MAX_AREA_MM2 {
        return offset;
    }
    let mut in_box: Vec<f32> = pixels
        .iter()
        .filter(|&&(_, x, y)| within_box(x, y, bbox, BOX_PIXELS_MARGIN_PX))
        .map(|&(v, _, _)| v)
        .collect();
    let needed = (SMALL_BOX_MIN_FILL * in_box.len() as f64).ceil() as usize;
    if needed == 0 || in_box.iter().filter(|&&v| v + offset > 0.0).count() >= needed {
        return offset;
    }
    in_box.sort_by(|a, b| b.total_cmp(a));
    // Just above the needed-th likeliest pixel's logit, so that it and those above count.
    -in_box[needed - 1] + 1e-3
}

/// How far (model-input pixels) outside a box the interactive mask may reach.
pub(super) const BOX_CONSTRAINT_MARGIN_PX: f64 = 4.0;

/// How far outside a box the mask may reach for an image whose in-plane voxels are
/// `voxel_px` model-input pixels wide: [`BOX_CONSTRAINT_MARGIN_PX`], or a voxel and a
/// pixel where voxels are coarser (a box drawn a voxel inside the structure keeps it).
pub(super) fn box_margin_px(voxel_px: f64) -> f64 {
    BOX_CONSTRAINT_MARGIN_PX.max(voxel_px + 1.0)
}

/// Radius (model-input pixels) around a click that the click decides outright beside a
/// box; a click alone decides at most this far (see [`correct_with_click`]).
pub(super) const CLICK_CONSTRAINT_RADIUS_PX: f64 = 4.0;

/// Log-odds a prompt's hard constraint sets: far beyond what the head and the averaged
/// views give, so a decided pixel stays decided when masks are laid over each other.
const DECIDED_LOG_ODDS: f32 = 8.0;

/// `value` (log-odds) decided by a prompt: at least [`DECIDED_LOG_ODDS`] where it says
/// the structure is (`positive`), at most its negative where it says it is not.
fn decided(value: f32, positive: bool) -> f32 {
    if positive {
        value.max(DECIDED_LOG_ODDS)
    } else {
        value.min(-DECIDED_LOG_ODDS)
    }
}

/// The interactive mask (binary logits `[m, m]`, pixel `(x, y)` covering model-input
/// pixels `scale·x .. scale·(x+1)`) with the prompts as hard constraints: nothing
/// farther than [`box_margin_px`] outside the box, the structure within
/// [`CLICK_CONSTRAINT_RADIUS_PX`] of a positive click and not within it of a negative
/// one (the last click wins where clicks overlap). The learned head follows the prompts
/// in between; the constraints make sure a prompt is never ignored.
pub(super) fn constrain_to_prompts(
    mask: &Tensor,
    prompts: &SlicePrompts,
    scale: f64,
    voxel_px: f64,
) -> Result<Tensor> {
    let side = mask.size()[1];
    let mut values = Vec::<f32>::try_from(mask.flatten(0, -1))?;
    let centre = |index: usize| pixel_centre(index, side, scale);
    if let Some(bbox) = prompts.bounding_box {
        for (index, value) in values.iter_mut().enumerate() {
            let (x, y) = centre(index);
            if !within_box(x, y, bbox, box_margin_px(voxel_px)) {
                *value = decided(*value, false);
            }
        }
    }
    for point in &prompts.points {
        for (index, value) in values.iter_mut().enumerate() {
            let (x, y) = centre(index);
            if near_click(x, y, point, CLICK_CONSTRAINT_RADIUS_PX) {
                *value = decided(*value, point.positive);
            }
        }
    }
    Ok(Tensor::from_slice(&values).view([side, side]))
}

/// Where a voxel coordinate falls in the slice stack, with clear errors for points
/// outside the volume or outside the region of interest.
pub(super) fn locate(
    state: &VolumeState,
    ijk: [f64; 3],
) -> Result<crate::volume::slicing::SlicePoint> {
    let dims = state.volume.grid().dims();
    for axis in 0..3 {
        if !ijk[axis].is_finite() || ijk[axis] < -0.5 || ijk[axis] >= dims[axis] as f64 - 0.5 {
            return Err(Error::invalid_argument(format!(
                "prompt position {ijk:?} is outside the volume (dimensions {dims:?})"
            )));
        }
    }
    let plane = ijk[state.geometry.frame().coronal_axis].round().max(0.0) as usize;
    let slice = stack_index(state, plane)?;
    state.geometry.voxel_to_slice(ijk).ok_or_else(|| {
        Error::Internal(format!("slice {slice} of plane {plane} has no slice point"))
    })
}

impl Session {
    /// Adds a point prompt for `structure` (1..=12) at continuous voxel coordinates
    /// `ijk`; the prompt belongs to the coronal slice containing the point.
    /// Returns that slice (its voxel index along the slicing axis).
    pub fn add_point(&mut self, structure: u8, ijk: [f64; 3], positive: bool) -> Result<usize> {
        check_structure(structure)?;
        let state = self.state_mut()?;
        let point = locate(state, ijk)?;
        let plane = state.geometry.slice_voxel_indices()[point.slice];
        let points = &mut state
            .prompts
            .entry((structure, point.slice))
            .or_default()
            .points;
        if points.len() >= MAX_POINTS_PER_SLICE {
            return Err(Error::invalid_argument(format!(
                "structure {structure} already has {MAX_POINTS_PER_SLICE} point prompts on slice \
                 {plane}, the most accepted: clear them or prompt another slice"
            )));
        }
        points.push(PointPrompt {
            x: point.x,
            y: point.y,
            positive,
        });
        Ok(plane)
    }

    /// Sets the box prompt of `structure` from two opposite corners (voxel
    /// coordinates) on the same coronal slice. Returns that slice (voxel index along the
    /// slicing axis).
    pub fn add_box(
        &mut self,
        structure: u8,
        corner_a: [f64; 3],
        corner_b: [f64; 3],
    ) -> Result<usize> {
        check_structure(structure)?;
        let state = self.state_mut()?;
        let a = locate(state, corner_a)?;
        let b = locate(state, corner_b)?;
        if a.slice != b.slice {
            return Err(Error::invalid_argument(format!(
                "box corners {corner_a:?} and {corner_b:?} lie on different coronal slices \
                 ({} and {})",
                a.slice, b.slice
            )));
        }
        state
            .prompts
            .entry((structure, a.slice))
            .or_default()
            .bounding_box = Some([a.x.min(b.x), a.y.min(b.y), a.x.max(b.x), a.y.max(b.y)]);
        state.propagated_boxes.remove(&(structure, a.slice));
        Ok(state.geometry.slice_voxel_indices()[a.slice])
    }

    /// Removes the prompts of `structure` on coronal slice `slice` (voxel index along
    /// the slicing axis), or on all slices when None. With a model that has an
    /// interactive head, the slices whose interactive mask of `structure` is removed
    /// return at once to the automatic result (with any other structure's interactive
    /// mask on them laid over it again).
    pub fn clear_prompts(&mut self, structure: u8, slice: Option<usize>) -> Result<()> {
        check_structure(structure)?;
        let state = self.state_mut()?;
        let slice = slice.map(|plane| stack_index(state, plane)).transpose()?;
        let cleared = |&(st, sl): &(u8, usize)| st == structure && slice.is_none_or(|s| s == sl);
        state.prompts.retain(|key, _| !cleared(key));
        state.propagated_boxes.retain(|key| !cleared(key));
        let restored: Vec<usize> = state
            .interactive_masks
            .keys()
            .filter(|key| cleared(key))
            .map(|&(_, sl)| sl)
            .collect();
        state.interactive_masks.retain(|key, _| !cleared(key));
        state.mask_clicks.retain(|key, _| !cleared(key));
        for index in restored {
            self.compose_slice(index)?;
        }
        Ok(())
    }

    /// The model prompts (on the model's device) of one structure on one slice.
    pub(super) fn model_prompts(&self, prompts: &SlicePrompts) -> Prompts {
        SlicePrompts::batch(&[prompts], self.model.device())
    }
}
