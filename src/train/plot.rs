//! Training curves as CSV and as a small PNG plot (drawn without fonts: the axes'
//! ranges are written to a legend text file beside it).
//!
//! The PNG is encoded here (8-bit RGB, one zlib stream through `flate2`) to avoid a
//! plotting dependency that needs system fonts.

use std::io::Write;
use std::path::Path;

use flate2::write::ZlibEncoder;
use flate2::Compression;

use crate::error::{Error, Result};
use crate::weights::atomic_write;

/// An RGB raster.
struct Canvas {
    width: usize,
    height: usize,
    pixels: Vec<[u8; 3]>,
}

impl Canvas {
    fn new(width: usize, height: usize) -> Self {
        Canvas {
            width,
            height,
            pixels: vec![[255, 255, 255]; width * height],
        }
    }

    fn set(&mut self, x: i64, y: i64, colour: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            self.pixels[y as usize * self.width + x as usize] = colour;
        }
    }

    fn line(&mut self, from: (f64, f64), to: (f64, f64), colour: [u8; 3]) {
        let steps = ((to.0 - from.0).abs().max((to.1 - from.1).abs()).ceil() as usize).max(1);
        for s in 0..=steps {
            let t = s as f64 / steps as f64;
            let x = from.0 + (to.0 - from.0) * t;
            let y = from.1 + (to.1 - from.1) * t;
            // Two pixels thick so the curve stays visible when scaled down.
            self.set(x.round() as i64, y.round() as i64, colour);
            self.set(x.round() as i64, y.round() as i64 + 1, colour);
        }
    }

    fn png(&self) -> Result<Vec<u8>> {
        let mut raw = Vec::with_capacity((self.width * 3 + 1) * self.height);
        for row in self.pixels.chunks(self.width) {
            raw.push(0); // filter: none
            for p in row {
                raw.extend_from_slice(p);
            }
        }
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
        encoder
            .write_all(&raw)
            .map_err(|e| Error::Internal(format!("PNG compression: {e}")))?;
        let compressed = encoder
            .finish()
            .map_err(|e| Error::Internal(format!("PNG compression: {e}")))?;
        let mut out = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
        let mut header = Vec::new();
        header.extend_from_slice(&(self.width as u32).to_be_bytes());
        header.extend_from_slice(&(self.height as u32).to_be_bytes());
        header.extend_from_slice(&[8, 2, 0, 0, 0]);
        chunk(&mut out, b"IHDR", &header);
        chunk(&mut out, b"IDAT", &compressed);
        chunk(&mut out, b"IEND", &[]);
        Ok(out)
    }
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                0xedb8_8320 ^ (crc >> 1)
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
}

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
    let mut canvas = Canvas::new(width, panel_height * panels.len().max(1));
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
        canvas.line((margin, top + margin), (margin, bottom), grey);
        canvas.line((margin, bottom), (width as f64 - margin, bottom), grey);
        for series in panel {
            for pair in series.points.windows(2) {
                canvas.line(to_pixel(pair[0]), to_pixel(pair[1]), series.colour);
            }
            if series.points.len() == 1 {
                let (x, y) = to_pixel(series.points[0]);
                canvas.line((x - 2.0, y), (x + 2.0, y), series.colour);
            }
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
    let png = canvas.png()?;
    atomic_write(png_path, |w| {
        w.write_all(&png).map_err(|e| Error::io(png_path, e))
    })?;
    atomic_write(legend_path, |w| {
        w.write_all(legend.as_bytes())
            .map_err(|e| Error::io(legend_path, e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_png_reference_value() {
        // CRC of the IEND chunk type, as found in every PNG file.
        assert_eq!(crc32(b"IEND"), 0xae42_6082);
    }
}
