//! Small raster helpers shared by the PNG outputs (segmentation overview, training
//! curves): text in a built-in 8x8 bitmap font (no font files needed), lines, and
//! atomic PNG writing.

use std::io::Cursor;
use std::path::Path;

use image::{Rgb, RgbImage};

use crate::error::{Error, Result};

/// Height in pixels of a text line drawn at `scale`.
pub(crate) fn text_height(scale: u32) -> u32 {
    8 * scale
}

/// Width in pixels of `text` drawn at `scale`.
pub(crate) fn text_width(text: &str, scale: u32) -> u32 {
    text.chars().count() as u32 * 8 * scale
}

/// Draws `text` with its top-left corner at (`left`, `top`); pixels outside the image
/// are skipped, characters the font lacks are left blank.
pub(crate) fn draw_text(
    image: &mut RgbImage,
    left: i64,
    top: i64,
    text: &str,
    colour: [u8; 3],
    scale: u32,
) {
    use font8x8::UnicodeFonts;
    let scale = i64::from(scale);
    for (index, character) in text.chars().enumerate() {
        let Some(glyph) = font8x8::BASIC_FONTS.get(character) else {
            continue;
        };
        let x0 = left + index as i64 * 8 * scale;
        for (row, bits) in glyph.iter().enumerate() {
            for column in 0..8i64 {
                if bits & (1 << column) == 0 {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        put(
                            image,
                            x0 + column * scale + dx,
                            top + row as i64 * scale + dy,
                            colour,
                        );
                    }
                }
            }
        }
    }
}

/// Sets one pixel if it lies inside the image.
pub(crate) fn put(image: &mut RgbImage, x: i64, y: i64, colour: [u8; 3]) {
    if x >= 0 && y >= 0 && (x as u32) < image.width() && (y as u32) < image.height() {
        image.put_pixel(x as u32, y as u32, Rgb(colour));
    }
}

/// Draws a two-pixel-thick straight line (thick so it stays visible when scaled down).
pub(crate) fn draw_line(image: &mut RgbImage, from: (f64, f64), to: (f64, f64), colour: [u8; 3]) {
    let steps = ((to.0 - from.0).abs().max((to.1 - from.1).abs()).ceil() as usize).max(1);
    for step in 0..=steps {
        let t = step as f64 / steps as f64;
        let x = (from.0 + (to.0 - from.0) * t).round() as i64;
        let y = (from.1 + (to.1 - from.1) * t).round() as i64;
        put(image, x, y, colour);
        put(image, x, y + 1, colour);
    }
}

/// Encodes `image` as PNG and writes it atomically to `path`.
pub(crate) fn save_png(image: &RgbImage, path: &Path) -> Result<()> {
    let mut encoded = Cursor::new(Vec::new());
    image
        .write_to(&mut encoded, image::ImageFormat::Png)
        .map_err(|e| Error::Internal(format!("PNG encoding: {e}")))?;
    crate::weights::atomic_write(path, |file| {
        std::io::Write::write_all(file, encoded.get_ref()).map_err(|e| Error::io(path, e))
    })
}
