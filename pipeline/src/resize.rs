//! Image resizing on SIMD convolution kernels (`fast_image_resize`, which picks AVX2, SSE4.1 or
//! NEON at run time). The stages call these instead of `image::imageops::resize`: same filters,
//! several times faster, and the results agree within a level or two of 255 (tested below).

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{GrayImage, ImageBuffer, Pixel, RgbImage, RgbaImage};

/// The convolution kernel of a resize.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Bilinear (tent); widened to an area average when shrinking.
    Triangle,
    /// Catmull-Rom bicubic.
    CatmullRom,
    /// Lanczos, three lobes.
    Lanczos3,
}

impl Filter {
    fn alg(self) -> ResizeAlg {
        ResizeAlg::Convolution(match self {
            Self::Triangle => FilterType::Bilinear,
            Self::CatmullRom => FilterType::CatmullRom,
            Self::Lanczos3 => FilterType::Lanczos3,
        })
    }
}

/// `img` resized to `width × height`.
pub fn rgb(img: &RgbImage, width: u32, height: u32, filter: Filter) -> RgbImage {
    resize(img, PixelType::U8x3, width, height, filter, false)
}

/// `img` resized to `width × height`.
pub fn gray(img: &GrayImage, width: u32, height: u32, filter: Filter) -> GrayImage {
    resize(img, PixelType::U8, width, height, filter, false)
}

/// `img` resized to `width × height` on premultiplied alpha (no colour bleeds in from
/// transparent pixels); straight alpha again on return.
pub fn rgba_premultiplied(img: &RgbaImage, width: u32, height: u32, filter: Filter) -> RgbaImage {
    resize(img, PixelType::U8x4, width, height, filter, true)
}

/// The region `[x, y, width, height]` of `img` (inside it) resized to `width × height` as
/// [`rgba_premultiplied`] does, without copying the region out first.
pub fn rgba_region_premultiplied(
    img: &RgbaImage,
    region: [u32; 4],
    width: u32,
    height: u32,
    filter: Filter,
) -> RgbaImage {
    resize_region(img, PixelType::U8x4, region, width, height, filter, true)
}

fn resize<P: Pixel<Subpixel = u8>>(
    img: &ImageBuffer<P, Vec<u8>>,
    pixel_type: PixelType,
    width: u32,
    height: u32,
    filter: Filter,
    use_alpha: bool,
) -> ImageBuffer<P, Vec<u8>> {
    if img.dimensions() == (width.max(1), height.max(1)) {
        return img.clone();
    }
    let whole = [0, 0, img.width(), img.height()];
    resize_region(img, pixel_type, whole, width, height, filter, use_alpha)
}

fn resize_region<P: Pixel<Subpixel = u8>>(
    img: &ImageBuffer<P, Vec<u8>>,
    pixel_type: PixelType,
    [x, y, w, h]: [u32; 4],
    width: u32,
    height: u32,
    filter: Filter,
    use_alpha: bool,
) -> ImageBuffer<P, Vec<u8>> {
    let (width, height) = (width.max(1), height.max(1));
    if w == 0 || h == 0 || x + w > img.width() || y + h > img.height() {
        return ImageBuffer::new(width, height);
    }
    // The buffer and pixel type agree by construction, so neither call can fail.
    let src = ImageRef::new(img.width(), img.height(), img.as_raw(), pixel_type)
        .expect("an image buffer matches its own dimensions");
    let mut dst = Image::new(width, height, pixel_type);
    // Premultiplying makes the resizer copy the whole source first (80 MB for a 20-megapixel
    // photo); an opaque region needs none, and photos are almost always opaque.
    let channels = P::CHANNEL_COUNT as usize;
    let use_alpha = use_alpha
        && (y..y + h).any(|row| {
            let start = (row as usize * img.width() as usize + x as usize) * channels;
            img.as_raw()[start..start + w as usize * channels]
                .chunks_exact(channels)
                .any(|p| p[channels - 1] != u8::MAX)
        });
    let options = ResizeOptions::new()
        .resize_alg(filter.alg())
        .use_alpha(use_alpha)
        .crop(f64::from(x), f64::from(y), f64::from(w), f64::from(h));
    Resizer::new()
        .resize(&src, &mut dst, &options)
        .expect("source and destination pixel types match");
    ImageBuffer::from_raw(width, height, dst.into_vec())
        .expect("the resizer fills width × height pixels")
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::imageops::{self, FilterType as ImageFilter};
    use image::{Luma, Rgb, Rgba};

    fn photo() -> RgbImage {
        image::open(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../testdata/astronaut.png"
        ))
        .expect("astronaut.png")
        .to_rgb8()
    }

    fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(&x, &y)| f64::from(x.abs_diff(y)))
            .sum::<f64>()
            / a.len() as f64
    }

    #[test]
    fn matches_image_crate_within_a_level() {
        let img = photo();
        for (filter, theirs, (w, h)) in [
            (Filter::Lanczos3, ImageFilter::Lanczos3, (320, 320)),
            (Filter::Triangle, ImageFilter::Triangle, (200, 150)),
            (Filter::Triangle, ImageFilter::Triangle, (900, 700)),
            (Filter::CatmullRom, ImageFilter::CatmullRom, (648, 648)),
        ] {
            let ours = rgb(&img, w, h, filter);
            let reference = imageops::resize(&img, w, h, theirs);
            assert_eq!(ours.dimensions(), (w, h));
            let mad = mean_abs_diff(ours.as_raw(), reference.as_raw());
            assert!(mad <= 1.0, "{filter:?} to {w}×{h}: mean |diff| {mad:.3}");
        }
        let g = image::DynamicImage::ImageRgb8(img).to_luma8();
        let ours = gray(&g, 777, 555, Filter::Triangle);
        let reference = imageops::resize(&g, 777, 555, ImageFilter::Triangle);
        let mad = mean_abs_diff(ours.as_raw(), reference.as_raw());
        assert!(mad <= 1.0, "gray: mean |diff| {mad:.3}");
    }

    #[test]
    fn constants_stay_constant() {
        let g = GrayImage::from_pixel(37, 91, Luma([201]));
        assert!(gray(&g, 320, 320, Filter::Lanczos3)
            .pixels()
            .all(|p| p.0 == [201]));
        let c = RgbImage::from_pixel(400, 300, Rgb([10, 200, 99]));
        assert!(rgb(&c, 123, 45, Filter::Triangle)
            .pixels()
            .all(|p| p.0 == [10, 200, 99]));
    }

    #[test]
    fn transparent_pixels_lend_no_colour() {
        // Left half opaque red, right half transparent green: the edge stays red, not brown.
        let img = RgbaImage::from_fn(64, 64, |x, _| {
            if x < 32 {
                Rgba([255, 0, 0, 255])
            } else {
                Rgba([0, 255, 0, 0])
            }
        });
        let out = rgba_premultiplied(&img, 23, 23, Filter::Lanczos3);
        for p in out.pixels().filter(|p| p.0[3] >= 16) {
            assert!(p.0[1] <= 8 && p.0[0] >= 200, "colour bled: {p:?}");
        }
    }

    #[test]
    fn a_region_resizes_as_its_copy_would() {
        let img = image::DynamicImage::ImageRgb8(photo()).to_rgba8();
        let cut = imageops::crop_imm(&img, 100, 60, 300, 250).to_image();
        let whole = rgba_premultiplied(&cut, 120, 100, Filter::Triangle);
        let region =
            rgba_region_premultiplied(&img, [100, 60, 300, 250], 120, 100, Filter::Triangle);
        // The region's filter may reach past its edge into the photo; the copy's cannot.
        let mad = mean_abs_diff(whole.as_raw(), region.as_raw());
        assert!(mad <= 1.0, "mean |diff| {mad:.3}");
        let outside = rgba_region_premultiplied(&img, [500, 0, 100, 10], 10, 10, Filter::Triangle);
        assert!(outside.pixels().all(|p| p.0 == [0, 0, 0, 0]));
    }

    #[test]
    fn opaque_images_skip_premultiplying_with_the_same_result() {
        // With every pixel opaque the alpha-aware path and the plain one agree, so skipping
        // the premultiplied copy changes nothing.
        let img = image::DynamicImage::ImageRgb8(photo()).to_rgba8();
        let src = ImageRef::new(img.width(), img.height(), img.as_raw(), PixelType::U8x4).unwrap();
        let mut with_alpha = Image::new(200, 170, PixelType::U8x4);
        Resizer::new()
            .resize(
                &src,
                &mut with_alpha,
                &ResizeOptions::new()
                    .resize_alg(Filter::CatmullRom.alg())
                    .use_alpha(true),
            )
            .unwrap();
        let ours = rgba_premultiplied(&img, 200, 170, Filter::CatmullRom);
        let mad = mean_abs_diff(ours.as_raw(), with_alpha.buffer());
        assert!(mad <= 0.01, "mean |diff| {mad:.4}");
        let region =
            rgba_region_premultiplied(&img, [0, 0, 512, 512], 200, 170, Filter::CatmullRom);
        assert_eq!(region, ours);
    }

    #[test]
    fn same_size_is_a_copy_and_zero_is_one() {
        let img = photo();
        assert_eq!(rgb(&img, img.width(), img.height(), Filter::Lanczos3), img);
        assert_eq!(rgb(&img, 0, 0, Filter::Triangle).dimensions(), (1, 1));
    }
}
