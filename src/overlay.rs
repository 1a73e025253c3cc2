//! A PNG overview of a segmentation: coronal, axial and sagittal views through the
//! segmented structures with the 12 structures coloured, and a legend.

use std::path::Path;

use image::{Rgb, RgbImage};

use crate::error::{Error, Result};
use crate::labels::STRUCTURES;
use crate::render::{draw_text, save_png, text_height, text_width};
use crate::volume::slicing::CoronalFrame;
use crate::volume::{LabelVolume, Volume};

/// Display pixels per millimetre.
const PIXELS_PER_MM: f64 = 2.0;
/// Opacity of the structure colours over the image.
const LABEL_OPACITY: f32 = 0.55;
/// Scale of the 8x8 bitmap font.
const FONT_SCALE: u32 = 2;

/// One view: which voxel axis runs down the rows and across the columns (and in
/// which direction), and the fixed plane.
struct View {
    row_axis: usize,
    row_reversed: bool,
    column_axis: usize,
    column_reversed: bool,
    plane_axis: usize,
    plane: usize,
}

/// Writes the overview of `labels` over `image` (same grid) to `path` (PNG): coronal and
/// axial slices through the centre of the labelled voxels and a sagittal slice through
/// the left-hemisphere structures, in radiological convention (patient right on the
/// image left), with a colour legend.
pub fn write_overlay_png(image: &Volume, labels: &LabelVolume, path: &Path) -> Result<()> {
    if image.grid().dims() != labels.grid().dims() {
        return Err(Error::invalid_argument(format!(
            "image {:?} and labels {:?} have different dimensions",
            image.grid().dims(),
            labels.grid().dims()
        )));
    }
    let grid = image.grid();
    let dims = grid.dims();
    let frame = CoronalFrame::from_grid(grid);
    let centre = label_centre(labels, |_| true);
    // A mid-sagittal plane would miss every structure: cut through the left ones.
    let left_centre = label_centre(labels, |class| class % 2 == 1);
    // Voxel index runs towards patient left (+1) / inferior (+1) / anterior (+1).
    let towards_left = frame.column_step > 0;
    let towards_inferior = frame.row_step > 0;
    let towards_anterior = frame.slice_step > 0;
    let views = [
        // Coronal: rows superior→inferior, columns right→left.
        View {
            row_axis: frame.row_axis,
            row_reversed: !towards_inferior,
            column_axis: frame.column_axis,
            column_reversed: !towards_left,
            plane_axis: frame.coronal_axis,
            plane: centre[frame.coronal_axis],
        },
        // Axial: rows anterior→posterior, columns right→left.
        View {
            row_axis: frame.coronal_axis,
            row_reversed: towards_anterior,
            column_axis: frame.column_axis,
            column_reversed: !towards_left,
            plane_axis: frame.row_axis,
            plane: centre[frame.row_axis],
        },
        // Sagittal: rows superior→inferior, columns anterior→posterior.
        View {
            row_axis: frame.row_axis,
            row_reversed: !towards_inferior,
            column_axis: frame.coronal_axis,
            column_reversed: towards_anterior,
            plane_axis: frame.column_axis,
            plane: left_centre[frame.column_axis],
        },
    ];
    let (low, high) = display_window(image.data());
    let spacing = grid.spacing();
    let panels: Vec<RgbImage> = views
        .iter()
        .map(|view| render_view(image, labels, view, dims, spacing, (low, high)))
        .collect();
    let legend = render_legend();
    let margin = 8;
    let width = panels.iter().map(|p| p.width() + margin).sum::<u32>() + legend.width() + margin;
    let height = panels
        .iter()
        .map(|p| p.height())
        .max()
        .unwrap_or(0)
        .max(legend.height())
        + 2 * margin;
    let mut canvas = RgbImage::from_pixel(width, height, Rgb([0, 0, 0]));
    let mut x = margin;
    for panel in panels.iter().chain(std::iter::once(&legend)) {
        image::imageops::overlay(&mut canvas, panel, i64::from(x), i64::from(margin));
        x += panel.width() + margin;
    }
    save_png(&canvas, path)
}

/// The voxel at the centre of the bounding box of the voxels whose class passes `keep`
/// (background excluded; the volume centre when there are none).
fn label_centre(labels: &LabelVolume, keep: impl Fn(u8) -> bool) -> [usize; 3] {
    let dims = labels.grid().dims();
    let mut low = dims;
    let mut high = [0; 3];
    for (index, _) in labels
        .data()
        .iter()
        .enumerate()
        .filter(|(_, &l)| l > 0 && keep(l))
    {
        let voxel = [
            index % dims[0],
            (index / dims[0]) % dims[1],
            index / (dims[0] * dims[1]),
        ];
        for axis in 0..3 {
            low[axis] = low[axis].min(voxel[axis]);
            high[axis] = high[axis].max(voxel[axis]);
        }
    }
    std::array::from_fn(|axis| {
        if low[axis] > high[axis] {
            dims[axis] / 2
        } else {
            (low[axis] + high[axis]) / 2
        }
    })
}

/// 1st and 99th percentiles of the non-zero voxels, for grey-level display.
fn display_window(data: &[f32]) -> (f32, f32) {
    let mut values: Vec<f32> = data
        .iter()
        .copied()
        .filter(|v| *v != 0.0)
        .step_by(7)
        .collect();
    if values.is_empty() {
        return (0.0, 1.0);
    }
    values.sort_by(f32::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q) as usize];
    let (low, high) = (at(0.01), at(0.99));
    (low, if high > low { high } else { low + 1.0 })
}

fn render_view(
    image: &Volume,
    labels: &LabelVolume,
    view: &View,
    dims: [usize; 3],
    spacing: [f64; 3],
    (low, high): (f32, f32),
) -> RgbImage {
    let rows = dims[view.row_axis];
    let columns = dims[view.column_axis];
    let height = ((rows as f64 * spacing[view.row_axis] * PIXELS_PER_MM).round() as u32).max(1);
    let width =
        ((columns as f64 * spacing[view.column_axis] * PIXELS_PER_MM).round() as u32).max(1);
    let mut out = RgbImage::new(width, height);
    for (x, y, pixel) in out.enumerate_pixels_mut() {
        let mut row = ((f64::from(y) + 0.5) / f64::from(height) * rows as f64) as usize;
        let mut column = ((f64::from(x) + 0.5) / f64::from(width) * columns as f64) as usize;
        row = row.min(rows - 1);
        column = column.min(columns - 1);
        if view.row_reversed {
            row = rows - 1 - row;
        }
        if view.column_reversed {
            column = columns - 1 - column;
        }
        let mut voxel = [0; 3];
        voxel[view.row_axis] = row;
        voxel[view.column_axis] = column;
        voxel[view.plane_axis] = view.plane;
        let grey = ((image.get(voxel[0], voxel[1], voxel[2]) - low) / (high - low)).clamp(0.0, 1.0)
            * 255.0;
        let mut rgb = [grey; 3];
        let label = labels.get(voxel[0], voxel[1], voxel[2]);
        if let Some(structure) = STRUCTURES.iter().find(|s| s.class == label) {
            for (channel, colour) in rgb.iter_mut().zip(structure.colour) {
                *channel = *channel * (1.0 - LABEL_OPACITY) + f32::from(colour) * LABEL_OPACITY;
            }
        }
        *pixel = Rgb(rgb.map(|c| c.round() as u8));
    }
    out
}

fn render_legend() -> RgbImage {
    let line = text_height(FONT_SCALE) + 6;
    let longest = STRUCTURES
        .iter()
        .map(|s| text_width(s.long_name, FONT_SCALE))
        .max()
        .unwrap_or(0);
    let width = line + 6 + longest;
    let mut out = RgbImage::from_pixel(width, line * STRUCTURES.len() as u32, Rgb([0, 0, 0]));
    for (index, structure) in STRUCTURES.iter().enumerate() {
        let top = index as u32 * line;
        for y in top + 2..top + line - 2 {
            for x in 0..line - 4 {
                out.put_pixel(x, y, Rgb(structure.colour));
            }
        }
        draw_text(
            &mut out,
            i64::from(line + 2),
            i64::from(top + 3),
            structure.long_name,
            [255, 255, 255],
            FONT_SCALE,
        );
    }
    out
}
