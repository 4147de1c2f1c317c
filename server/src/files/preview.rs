//! Previews of images: the `image` crate, with only its PNG, JPEG, GIF and WebP codecs
//! (pure Rust, no C libraries to patch), decoding under limits.
//!
//! An image file can be small and claim a huge canvas (a "decompression bomb": a few
//! kilobytes of PNG that decode to gigabytes). So the size is read from the header
//! first, and anything over [`Bounds::max_pixels`] is not decoded at all; the decoder also
//! runs with `image::Limits` capping its allocations at [`Bounds::max_decode_bytes`], for
//! whatever the header did not tell. Bounded pixels bound the decoding time too. An image that fails
//! any of this is kept as a plain attachment, never an error and never a crash. Decoding
//! is blocking work: callers run it on a blocking thread, a few at a time. A photo's EXIF
//! orientation is applied, and the size reported is the one people see.

use std::{io::Cursor, path::Path};

use confab_shared::ImageSize;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, metadata::Orientation};

/// What decoding an image for its preview may take: past either bound the image stays a
/// plain file (`--preview-max-pixels`, `--preview-max-decode-bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Largest image decoded, width × height.
    pub max_pixels: u64,
    /// Most memory the decoder may allocate, and the most the decoded image may take.
    pub max_decode_bytes: u64,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            max_pixels: 50_000_000,
            max_decode_bytes: 256 * 1024 * 1024,
        }
    }
}
/// A preview fits in a square this many pixels wide.
pub const THUMB_SIDE: u32 = 400;

/// A decoded image's size and its preview, encoded.
#[derive(Debug)]
pub struct Preview {
    pub size: ImageSize,
    pub thumb: Vec<u8>,
}

/// The preview of the file at `path`, whose sniffed type is `mime`; `None` when it is
/// not one of the four image types, claims too many pixels, or does not decode within
/// the bounds.
pub fn make(path: &Path, mime: &str, bounds: Bounds) -> Option<Preview> {
    let format = match mime {
        "image/png" => ImageFormat::Png,
        "image/jpeg" => ImageFormat::Jpeg,
        "image/gif" => ImageFormat::Gif,
        "image/webp" => ImageFormat::WebP,
        _ => return None,
    };
    let mut reader = ImageReader::open(path).ok()?;
    reader.set_format(format);
    reader.limits(limits(bounds));
    // Reads the header only.
    let mut decoder = reader.into_decoder().ok()?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > bounds.max_pixels || width == 0 || height == 0 {
        tracing::debug!(width, height, "image too large to preview: kept as a file");
        return None;
    }
    // The decoded buffer itself, which the decoder's own limit does not count.
    if decoder.total_bytes() > bounds.max_decode_bytes {
        return None;
    }
    // A photo's camera orientation (EXIF), so the preview stands the way it was taken.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = match DynamicImage::from_decoder(decoder) {
        Ok(image) => image,
        Err(e) => {
            tracing::debug!("image does not decode ({e}): kept as a file");
            return None;
        }
    };
    image.apply_orientation(orientation);
    let (width, height) = (image.width(), image.height());
    let thumb = encode(&image.thumbnail(THUMB_SIDE, THUMB_SIDE))?;
    Some(Preview {
        size: ImageSize { width, height },
        thumb,
    })
}

fn limits(bounds: Bounds) -> Limits {
    let mut limits = Limits::default();
    limits.max_alloc = Some(bounds.max_decode_bytes);
    limits
}

/// A preview as PNG: lossless, transparent where the image is, and one type to serve.
fn encode(thumb: &DynamicImage) -> Option<Vec<u8>> {
    let mut out = Cursor::new(Vec::new());
    // PNG takes 8-bit RGB(A); 16-bit and float images are brought down first.
    let thumb = if thumb.color().has_alpha() {
        DynamicImage::ImageRgba8(thumb.to_rgba8())
    } else {
        DynamicImage::ImageRgb8(thumb.to_rgb8())
    };
    thumb.write_to(&mut out, ImageFormat::Png).ok()?;
    Some(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 7])
        });
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, ImageFormat::Png).expect("encode");
        out.into_inner()
    }

    #[test]
    fn a_preview_fits_the_square_and_keeps_the_shape() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("wide.png");
        std::fs::write(&path, png(1000, 250)).expect("write");
        let preview = make(&path, "image/png", Bounds::default()).expect("a preview");
        assert_eq!(
            preview.size,
            ImageSize {
                width: 1000,
                height: 250
            }
        );
        let thumb = image::load_from_memory(&preview.thumb).expect("thumb decodes");
        assert_eq!((thumb.width(), thumb.height()), (400, 100));
    }

    /// A PNG of 65 bytes whose header claims 60,000 × 60,000 pixels (a decompression
    /// bomb); the binary test uploads the same file.
    const BOMB: &[u8] = include_bytes!("../../tests/fixtures/bomb-60000x60000.png");

    #[test]
    fn a_bomb_is_not_decoded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bomb.png");
        std::fs::write(&path, BOMB).expect("write");
        // A well-formed header: refused for its size, not for being broken.
        let dimensions = image::ImageReader::open(&path)
            .and_then(|r| r.with_guessed_format())
            .expect("open")
            .into_dimensions()
            .expect("the header reads");
        assert_eq!(dimensions, (60_000, 60_000));
        assert!(make(&path, "image/png", Bounds::default()).is_none());
    }

    #[test]
    fn garbage_and_other_types_have_no_preview() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x");
        let mut broken = png(10, 10);
        broken.truncate(40);
        std::fs::write(&path, &broken).expect("write");
        assert!(make(&path, "image/png", Bounds::default()).is_none());
        std::fs::write(&path, png(10, 10)).expect("write");
        assert!(make(&path, "image/svg+xml", Bounds::default()).is_none());
        assert!(make(&path, "text/html", Bounds::default()).is_none());
        // The type is the sniffed one: PNG bytes are not decoded as JPEG.
        assert!(make(&path, "image/jpeg", Bounds::default()).is_none());
    }
}
