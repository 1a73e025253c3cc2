//! Training curves as a PNG plot: panels stacked vertically, each with its y range and
//! series names written in the image; the same facts go to a text legend beside it for
//! scripts.

use std::io::Write;
use std::path::Path;

use image::RgbImage;

use crate::error::{Error, Result};
use crate::render::{draw_line, draw_text, save_png, text_height};
use crate::weights::atomic_write;

/// A named series of (x, y) points.
pub struct Series<'a> {
    /// Label (for the legend file).
    pub name: &'a str,
    /// Points.
    pub points: Vec<(f64, f64)>,
    /// Colour.
    pub colour: [u8; 3],
}

/// Draws panels stacked vertically (each panel its own y range, common x range) to
/// `png_path`, and writes the ranges and colours to `legend_path`.
pub fn plot_panels(png_path: &Path, legend_path: &Path, panels: &[Vec<Series<'_>>]) -> Result<()> {
    let (width, panel_height, margin) = (640usize, 240usize, 20.0);
    let mut canvas = RgbImage::from_pixel(
        width as u32,
        (panel_height * panels.len().max(1)) as u32,
        image::Rgb([255, 255, 255]),
    );
    let all_x: Vec<f64> = panels
        .iter()
        .flatten()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    let x_min = all_x.iter().copied().fold(f64::INFINITY, f64::min);
    let x_max = all_x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let x_span = if x_max > x_min { x_max - x_min } else { 1.0 };
    let mut legend = String::new();
    for (index, panel) in panels.iter().enumerate() {
        let top = (index * panel_height) as f64;
        let values: Vec<f64> = panel
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .filter(|v| v.is_finite())
            .collect();
        let y_min = values
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min)
            .min(0.0);
        let y_max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let y_span = if y_max > y_min { y_max - y_min } else { 1.0 };
        let to_pixel = |(x, y): (f64, f64)| {
            (
                margin + (x - x_min) / x_span * (width as f64 - 2.0 * margin),
                top + panel_height as f64
                    - margin
                    - (y - y_min) / y_span * (panel_height as f64 - 2.0 * margin),
            )
        };
        // Axes.
        let grey = [160, 160, 160];
        let bottom = top + panel_height as f64 - margin;
        draw_line(&mut canvas, (margin, top + margin), (margin, bottom), grey);
        draw_line(
            &mut canvas,
            (margin, bottom),
            (width as f64 - margin, bottom),
            grey,
        );
        let text_top = top as i64 + 2;
        let range = format!("y {y_min:.3}..{y_max:.3}   x {x_min}..{x_max}");
        draw_text(
            &mut canvas,
            margin as i64 + 4,
            text_top,
            &range,
            [90, 90, 90],
            1,
        );
        for (row, series) in panel.iter().enumerate() {
            for pair in series.points.windows(2) {
                draw_line(
                    &mut canvas,
                    to_pixel(pair[0]),
                    to_pixel(pair[1]),
                    series.colour,
                );
            }
            if series.points.len() == 1 {
                let (x, y) = to_pixel(series.points[0]);
                draw_line(&mut canvas, (x - 2.0, y), (x + 2.0, y), series.colour);
            }
            let name_top = text_top + (row as i64 + 1) * i64::from(text_height(1) + 2);
            draw_text(
                &mut canvas,
                width as i64 - 200,
                name_top,
                series.name,
                series.colour,
                1,
            );
            legend.push_str(&format!(
                "panel {}: {} in rgb{:?}; y axis {:.4}..{:.4}; x axis (iteration) {}..{}\n",
                index + 1,
                series.name,
                series.colour,
                y_min,
                y_max,
                x_min,
                x_max
            ));
        }
    }
    save_png(&canvas, png_path)?;
    atomic_write(legend_path, |w| {
        w.write_all(legend.as_bytes())
            .map_err(|e| Error::io(legend_path, e))
    })
}
