//! Matte cleaning: the segmentation model's saliency map made into the person's matte.
//!
//! U²-Net marks whatever is salient, which on real photos includes bits of the old
//! background (a patch of flag behind the hair, a bright corner) and leaves holes where the
//! person is dark or flat. Three steps, all O(pixels):
//!
//! 1. **One subject**: the connected component (4-neighbour, matte ≥ ½) that holds the face
//!    is kept; every other island, anywhere in the window, is dropped.
//! 2. **No holes**: background pixels that the kept component encloses (not connected to the
//!    window's border) become person.
//! 3. **Edge refined against the photo** with a guided filter (He, Sun, Tang, "Guided Image
//!    Filtering", ECCV 2010 / TPAMI 2013): the matte is fitted locally as a linear function
//!    of the photo's luminance, so its edge follows the hair and shoulder outline in the
//!    photo instead of the model's 320-px blur, soft where the photo is soft. Kept within a
//!    few pixels of the subject so it cannot bring islands back.

use image::GrayImage;

/// Matte cleaning settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleanParams {
    /// Matte level (0-255) from which a pixel counts as the subject when finding components.
    pub threshold: u8,
    /// Guided filter radius as a share of the window's shorter side (at least 2 px).
    pub radius_share: f32,
    /// Guided filter regularisation on the [0, 1] intensity scale: larger is smoother.
    pub eps: f32,
}

impl Default for CleanParams {
    fn default() -> Self {
        Self {
            threshold: 128,
            // 1000-px window → 10 px: about the width of U²-Net's edge blur once its 320-px
            // map is enlarged to the window.
            radius_share: 1.0 / 100.0,
            eps: 1e-3,
        }
    }
}

/// Cleans `matte` in place. `luma` is the photo's luminance (0-255) at the matte's size, and
/// `seed` a pixel of the subject (the face); with the seed outside the subject the matte is
/// left empty — a caller protects the face before calling.
pub fn clean(matte: &mut GrayImage, luma: &GrayImage, seed: [u32; 2], params: &CleanParams) {
    let (w, h) = matte.dimensions();
    if w == 0 || h == 0 || luma.dimensions() != (w, h) {
        return;
    }
    let (w, h) = (w as usize, h as usize);
    let raw = matte.as_raw();
    let subject: Vec<bool> = raw.iter().map(|&m| m >= params.threshold).collect();
    let mut keep = component(&subject, w, h, seed);
    fill_holes(&mut keep, w, h);

    let radius = ((w.min(h) as f32 * params.radius_share).round() as usize).max(2);
    // Pixels within `radius` of the subject: where the refined edge may fall.
    let keep_f: Vec<f32> = keep.iter().map(|&k| f32::from(u8::from(k))).collect();
    let near: Vec<bool> = box_mean(&keep_f, w, h, radius)
        .iter()
        .map(|&v| v > 0.0)
        .collect();
    let p: Vec<f32> = raw
        .iter()
        .zip(&keep)
        .zip(&subject)
        .zip(&near)
        .map(|(((&m, &k), &s), &n)| match (k, s, n) {
            // A filled hole: subject.
            (true, false, _) => 1.0,
            (_, _, false) => 0.0,
            // Another island within reach of the edge: background.
            (false, true, _) => 0.0,
            _ => f32::from(m) / 255.0,
        })
        .collect();
    let guide: Vec<f32> = luma
        .as_raw()
        .iter()
        .map(|&v| f32::from(v) / 255.0)
        .collect();
    let q = guided_filter(&guide, &p, w, h, radius, params.eps);
    for ((out, q), n) in matte.iter_mut().zip(q).zip(&near) {
        // The faint tail of the model's blur (under 15 %) is a glow of the old background
        // around the person, not hair: cut it, and stretch the rest back to full range.
        let v = ((q - TAIL) / (1.0 - 2.0 * TAIL)).clamp(0.0, 1.0);
        *out = if *n { crate::round_u8(v * 255.0) } else { 0 };
    }
    // The filter can leave faint specks in the band around the subject that touch nothing:
    // only what is connected to the subject through visible pixels stays (the rest, and
    // anything fainter than that, is background).
    let visible: Vec<bool> = matte.as_raw().iter().map(|&m| m >= VISIBLE).collect();
    let connected = component8(&visible, w, h, seed);
    for (m, c) in matte.iter_mut().zip(connected) {
        if !c {
            *m = 0;
        }
    }
}

/// Clears every pixel not connected (8-neighbour, through visible pixels) to `seed`: after the
/// matte is resampled to the output, a thread that joined a fragment to the subject can thin
/// out, and the fragment would float.
pub fn keep_connected(matte: &mut GrayImage, seed: [u32; 2]) {
    let (w, h) = (matte.width() as usize, matte.height() as usize);
    if w == 0 || h == 0 {
        return;
    }
    let visible: Vec<bool> = matte.as_raw().iter().map(|&m| m >= VISIBLE).collect();
    let connected = component8(&visible, w, h, seed);
    if !connected.iter().any(|&c| c) {
        return;
    }
    for (m, c) in matte.iter_mut().zip(connected) {
        if !c {
            *m = 0;
        }
    }
}

/// Share of the refined matte's range cut at each end (see [`clean`]).
const TAIL: f32 = 0.15;

/// Matte level below which a pixel is not seen against the background (12 %).
const VISIBLE: u8 = 32;

/// The 8-connected component of `mask` holding `seed`.
fn component8(mask: &[bool], w: usize, h: usize, seed: [u32; 2]) -> Vec<bool> {
    flood(mask, w, h, seed, true)
}

/// The component of `mask` holding `seed`, 4- or (`diagonal`) 8-connected; empty when the
/// seed is not in `mask`.
fn flood(mask: &[bool], w: usize, h: usize, seed: [u32; 2], diagonal: bool) -> Vec<bool> {
    let mut out = vec![false; mask.len()];
    let (sx, sy) = (seed[0] as usize, seed[1] as usize);
    if sx >= w || sy >= h || !mask[sy * w + sx] {
        return out;
    }
    let mut stack = vec![sy * w + sx];
    out[sy * w + sx] = true;
    while let Some(i) = stack.pop() {
        let (x, y) = (i % w, i / w);
        for ny in y.saturating_sub(1)..=(y + 1).min(h - 1) {
            for nx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                if !diagonal && nx != x && ny != y {
                    continue;
                }
                let j = ny * w + nx;
                if mask[j] && !out[j] {
                    out[j] = true;
                    stack.push(j);
                }
            }
        }
    }
    out
}

/// The 4-connected component of `mask` holding `seed` (empty when the seed is not in it).
fn component(mask: &[bool], w: usize, h: usize, seed: [u32; 2]) -> Vec<bool> {
    flood(mask, w, h, seed, false)
}

/// Sets to `true` every `false` pixel not 4-connected to the border through `false` pixels.
fn fill_holes(keep: &mut [bool], w: usize, h: usize) {
    let mut outside = vec![false; keep.len()];
    let mut stack = Vec::new();
    let push = |i: usize, outside: &mut Vec<bool>, stack: &mut Vec<usize>| {
        if !keep[i] && !outside[i] {
            outside[i] = true;
            stack.push(i);
        }
    };
    for x in 0..w {
        push(x, &mut outside, &mut stack);
        push((h - 1) * w + x, &mut outside, &mut stack);
    }
    for y in 0..h {
        push(y * w, &mut outside, &mut stack);
        push(y * w + w - 1, &mut outside, &mut stack);
    }
    while let Some(i) = stack.pop() {
        let (x, y) = (i % w, i / w);
        if x > 0 {
            push(i - 1, &mut outside, &mut stack);
        }
        if x + 1 < w {
            push(i + 1, &mut outside, &mut stack);
        }
        if y > 0 {
            push(i - w, &mut outside, &mut stack);
        }
        if y + 1 < h {
            push(i + w, &mut outside, &mut stack);
        }
    }
    for (k, o) in keep.iter_mut().zip(outside) {
        *k = !o;
    }
}

/// Mean over the (2r+1)² box around each pixel, the box cut to the image (so edges average
/// fewer pixels rather than padding with zeros). Two running-sum passes: O(pixels).
pub(crate) fn box_mean(src: &[f32], w: usize, h: usize, r: usize) -> Vec<f32> {
    let mut tmp = vec![0.0f32; src.len()];
    // Rows. The running sums stay within 255 × (2r + 1) of whole-ish values, where f32's
    // rounding is far below a level of 8-bit output.
    for y in 0..h {
        let row = &src[y * w..(y + 1) * w];
        let out = &mut tmp[y * w..(y + 1) * w];
        let mut acc = 0.0f32;
        let mut lo = 0usize;
        let mut hi = 0usize; // exclusive
        for (x, o) in out.iter_mut().enumerate() {
            let (want_lo, want_hi) = (x.saturating_sub(r), (x + r + 1).min(w));
            while hi < want_hi {
                acc += row[hi];
                hi += 1;
            }
            while lo < want_lo {
                acc -= row[lo];
                lo += 1;
            }
            *o = acc / (hi - lo) as f32;
        }
    }
    // Columns, a whole row of running sums at a time.
    let mut out = vec![0.0f32; src.len()];
    let mut acc = vec![0.0f32; w];
    let (mut lo, mut hi) = (0usize, 0usize);
    for y in 0..h {
        let (want_lo, want_hi) = (y.saturating_sub(r), (y + r + 1).min(h));
        while hi < want_hi {
            for (a, v) in acc.iter_mut().zip(&tmp[hi * w..(hi + 1) * w]) {
                *a += *v;
            }
            hi += 1;
        }
        while lo < want_lo {
            for (a, v) in acc.iter_mut().zip(&tmp[lo * w..(lo + 1) * w]) {
                *a -= *v;
            }
            lo += 1;
        }
        let n = 1.0 / (hi - lo) as f32;
        for (o, a) in out[y * w..(y + 1) * w].iter_mut().zip(&acc) {
            *o = a * n;
        }
    }
    out
}

/// Grey-guide guided filter: `q = mean(a)·I + mean(b)` with `a = cov(I, p) / (var(I) + eps)`
/// and `b = mean(p) − a·mean(I)` over (2r+1)² boxes. With a radius of 4 or more the
/// coefficients are computed at half resolution and enlarged bilinearly ("fast guided filter",
/// He & Sun 2015): a and b are smooth, so this costs about a quarter and changes little.
pub(crate) fn guided_filter(
    i: &[f32],
    p: &[f32],
    w: usize,
    h: usize,
    r: usize,
    eps: f32,
) -> Vec<f32> {
    if r < 4 || w < 16 || h < 16 {
        let (a, b) = coefficients(i, p, w, h, r, eps);
        return i
            .iter()
            .zip(a.iter().zip(&b))
            .map(|(v, (a, b))| a * v + b)
            .collect();
    }
    let (hw, hh) = (w / 2, h / 2);
    let half = |src: &[f32]| -> Vec<f32> {
        let mut out = vec![0.0f32; hw * hh];
        for y in 0..hh {
            for x in 0..hw {
                let (sx, sy) = (2 * x, 2 * y);
                out[y * hw + x] = 0.25
                    * (src[sy * w + sx]
                        + src[sy * w + sx + 1]
                        + src[(sy + 1) * w + sx]
                        + src[(sy + 1) * w + sx + 1]);
            }
        }
        out
    };
    let (a, b) = coefficients(&half(i), &half(p), hw, hh, r / 2, eps);
    // Bilinear, pixel centres aligned: full-resolution x + 0.5 is half-resolution (x + 0.5) / 2.
    let sample = |m: &[f32], x: usize, y: usize| -> f32 {
        let fx = ((x as f32 + 0.5) / 2.0 - 0.5).clamp(0.0, (hw - 1) as f32);
        let fy = ((y as f32 + 0.5) / 2.0 - 0.5).clamp(0.0, (hh - 1) as f32);
        let (x0, y0) = (fx as usize, fy as usize);
        let (x1, y1) = ((x0 + 1).min(hw - 1), (y0 + 1).min(hh - 1));
        let (tx, ty) = (fx - x0 as f32, fy - y0 as f32);
        let top = m[y0 * hw + x0] * (1.0 - tx) + m[y0 * hw + x1] * tx;
        let bottom = m[y1 * hw + x0] * (1.0 - tx) + m[y1 * hw + x1] * tx;
        top * (1.0 - ty) + bottom * ty
    };
    let mut q = vec![0.0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let k = y * w + x;
            q[k] = sample(&a, x, y) * i[k] + sample(&b, x, y);
        }
    }
    q
}

/// The guided filter's smoothed coefficients `(mean(a), mean(b))`.
fn coefficients(
    i: &[f32],
    p: &[f32],
    w: usize,
    h: usize,
    r: usize,
    eps: f32,
) -> (Vec<f32>, Vec<f32>) {
    let mean_i = box_mean(i, w, h, r);
    let mean_p = box_mean(p, w, h, r);
    let ii: Vec<f32> = i.iter().map(|v| v * v).collect();
    let ip: Vec<f32> = i.iter().zip(p).map(|(a, b)| a * b).collect();
    let corr_i = box_mean(&ii, w, h, r);
    let corr_ip = box_mean(&ip, w, h, r);
    let mut a = vec![0.0f32; i.len()];
    let mut b = vec![0.0f32; i.len()];
    for k in 0..i.len() {
        let var = corr_i[k] - mean_i[k] * mean_i[k];
        let cov = corr_ip[k] - mean_i[k] * mean_p[k];
        a[k] = cov / (var.max(0.0) + eps);
        b[k] = mean_p[k] - a[k] * mean_i[k];
    }
    (box_mean(&a, w, h, r), box_mean(&b, w, h, r))
}

/// Colour decontamination of a cut-out (straight alpha): a pixel the matte makes partly
/// transparent still carries the old background's colour mixed into the person's, which
/// shows as a light or coloured halo on the new background. Its colour is replaced by the
/// mean colour of the nearly opaque pixels within `radius` (a local foreground estimate, the
/// idea of blur-fusion foreground estimation, Germer et al. 2020), so only the alpha blends.
pub fn decontaminate(img: &mut image::RgbaImage, radius: usize) {
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w == 0 || h == 0 {
        return;
    }
    const SOLID: u8 = 242;
    let px = img.as_raw();
    let weight: Vec<f32> = px
        .chunks_exact(4)
        .map(|p| f32::from(u8::from(p[3] >= SOLID)))
        .collect();
    if weight.iter().all(|&v| v == 0.0) {
        return;
    }
    let channel = |c: usize| -> Vec<f32> {
        px.chunks_exact(4)
            .zip(&weight)
            .map(|(p, w)| f32::from(p[c]) * w)
            .collect()
    };
    let (r, g, b) = (channel(0), channel(1), channel(2));
    let mw = box_mean(&weight, w, h, radius);
    let (mr, mg, mb) = (
        box_mean(&r, w, h, radius),
        box_mean(&g, w, h, radius),
        box_mean(&b, w, h, radius),
    );
    for (i, p) in img.pixels_mut().enumerate() {
        let a = p.0[3];
        if a == 0 || a >= SOLID || mw[i] <= 1e-6 {
            continue;
        }
        let to = |v: f32| crate::round_u8(v / mw[i]);
        p.0[0] = to(mr[i]);
        p.0[1] = to(mg[i]);
        p.0[2] = to(mb[i]);
    }
}

/// Clears the matte outside the space a person can fill around a face with eyes at `eye`
/// and inter-ocular distance `iod` (pixels): up to 3.2 iod above the eyes (tall hair, a cap),
/// 2.3 iod beside them down to the chin (head and hair are about 1.8 wide), and below the
/// chin a cone widening by 2 px per px (the shoulders). Salient things beside the head — a
/// flag, a lamp, a photo's own border when the photo was turned — are not the person even when
/// the model joins them to it. The edge is a ramp of 0.15 iod, not a cut.
pub fn limit_to_person(matte: &mut GrayImage, eye: [f32; 2], iod: f32) {
    if !(iod.is_finite() && iod > 0.0 && eye[0].is_finite() && eye[1].is_finite()) {
        return;
    }
    let ramp = 0.15 * iod;
    let top = eye[1] - 3.2 * iod;
    let shoulders = eye[1] + 1.55 * iod;
    for (x, y, p) in matte.enumerate_pixels_mut() {
        let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
        let half = 2.3 * iod + 2.0 * (py - shoulders).max(0.0);
        let inside = (half - (px - eye[0]).abs()).min(py - top);
        if inside >= ramp {
            continue;
        }
        let k = (inside / ramp).clamp(0.0, 1.0);
        p.0[0] = crate::round_u8(f32::from(p.0[0]) * k);
    }
}

/// The top of the subject above `(cx, eye_y)`: for each column within `half_width` of `cx`,
/// the first row going up from `eye_y` where the matte drops below half; the median of
/// those. `None` when most columns run into the window's top (the head is cut there, so its
/// top is unknown).
pub fn crown_row(matte: &GrayImage, cx: f32, eye_y: f32, half_width: f32) -> Option<f32> {
    let (w, h) = matte.dimensions();
    if w == 0 || h == 0 || !(cx.is_finite() && eye_y.is_finite() && half_width.is_finite()) {
        return None;
    }
    let x0 = (cx - half_width).floor().clamp(0.0, (w - 1) as f32) as u32;
    let x1 = (cx + half_width).ceil().clamp(0.0, (w - 1) as f32) as u32;
    let start = eye_y.floor().clamp(0.0, (h - 1) as f32) as u32;
    let mut tops = Vec::new();
    let mut cut = 0usize;
    for x in x0..=x1 {
        let mut y = start;
        while y > 0 && matte.get_pixel(x, y).0[0] >= 128 {
            y -= 1;
        }
        if y == 0 && matte.get_pixel(x, 0).0[0] >= 128 {
            cut += 1;
        } else {
            tops.push(y as f32 + 1.0);
        }
    }
    if tops.len() <= cut {
        return None;
    }
    tops.sort_by(f32::total_cmp);
    Some(tops[tops.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Luma;

    fn disc(w: u32, h: u32, c: [f32; 2], r: f32, v: u8) -> GrayImage {
        GrayImage::from_fn(w, h, |x, y| {
            let d = ((x as f32 + 0.5 - c[0]).powi(2) + (y as f32 + 0.5 - c[1]).powi(2)).sqrt();
            Luma([if d <= r { v } else { 0 }])
        })
    }

    #[test]
    fn islands_away_from_the_face_are_dropped() {
        let mut m = disc(200, 200, [60.0, 100.0], 40.0, 255);
        // A second blob, the leftover background.
        for y in 20..50 {
            for x in 150..190 {
                m.put_pixel(x, y, Luma([230]));
            }
        }
        let luma = GrayImage::from_pixel(200, 200, Luma([128]));
        clean(&mut m, &luma, [60, 100], &CleanParams::default());
        assert_eq!(m.get_pixel(170, 35).0[0], 0, "island dropped");
        assert!(m.get_pixel(60, 100).0[0] > 250, "subject kept");
    }

    #[test]
    fn holes_inside_the_subject_are_filled() {
        let mut m = disc(200, 200, [100.0, 100.0], 60.0, 255);
        for y in 90..110 {
            for x in 120..140 {
                m.put_pixel(x, y, Luma([0]));
            }
        }
        let luma = GrayImage::from_pixel(200, 200, Luma([128]));
        clean(&mut m, &luma, [100, 100], &CleanParams::default());
        assert!(m.get_pixel(130, 100).0[0] > 250, "hole filled");
        assert!(m.get_pixel(5, 5).0[0] == 0, "outside stays background");
    }

    #[test]
    fn the_edge_follows_the_photo_not_the_blurred_matte() {
        // Photo: a sharp bright disc (r = 50) on dark; matte: the same disc blurred into a
        // ramp from r = 40 to r = 60, as a 320-px model output looks once enlarged.
        let (w, h, c) = (200u32, 200u32, [100.0f32, 100.0]);
        let luma = GrayImage::from_fn(w, h, |x, y| {
            let d = ((x as f32 + 0.5 - c[0]).powi(2) + (y as f32 + 0.5 - c[1]).powi(2)).sqrt();
            Luma([if d <= 50.0 { 220 } else { 30 }])
        });
        let mut m = GrayImage::from_fn(w, h, |x, y| {
            let d = ((x as f32 + 0.5 - c[0]).powi(2) + (y as f32 + 0.5 - c[1]).powi(2)).sqrt();
            Luma([(((60.0 - d) / 20.0).clamp(0.0, 1.0) * 255.0) as u8])
        });
        let before_in = m.get_pixel(148, 100).0[0];
        let before_out = m.get_pixel(151, 100).0[0];
        clean(&mut m, &luma, [100, 100], &CleanParams::default());
        let (after_in, after_out) = (m.get_pixel(148, 100).0[0], m.get_pixel(151, 100).0[0]);
        assert!(
            after_in > before_in,
            "inside the photo's edge: {before_in} → {after_in}"
        );
        assert!(
            after_out < before_out,
            "outside it: {before_out} → {after_out}"
        );
    }

    #[test]
    fn a_seed_outside_the_subject_leaves_nothing() {
        let mut m = disc(50, 50, [25.0, 25.0], 10.0, 255);
        let luma = GrayImage::from_pixel(50, 50, Luma([128]));
        clean(&mut m, &luma, [1, 1], &CleanParams::default());
        assert!(m.iter().all(|&v| v == 0));
    }

    #[test]
    fn the_crown_is_the_top_of_the_head_above_the_eyes() {
        let m = disc(100, 200, [50.0, 100.0], 30.0, 255);
        let top = crown_row(&m, 50.0, 100.0, 8.0).expect("a crown");
        assert!((top - 70.0).abs() <= 2.0, "{top}");
        // A head running out of the window's top has no known crown.
        let cut = disc(100, 200, [50.0, 20.0], 30.0, 255);
        assert_eq!(crown_row(&cut, 50.0, 20.0, 8.0), None);
    }

    #[test]
    fn edge_pixels_take_the_subject_colour_not_the_old_background() {
        // Left half: the subject (red, opaque); a 4-px soft edge carrying white; then clear.
        let mut img = image::RgbaImage::from_fn(40, 10, |x, _| match x {
            0..=19 => image::Rgba([200, 20, 20, 255]),
            20..=23 => image::Rgba([240, 240, 240, 128]),
            _ => image::Rgba([255, 255, 255, 0]),
        });
        decontaminate(&mut img, 6);
        assert_eq!(
            img.get_pixel(21, 5).0,
            [200, 20, 20, 128],
            "colour from the subject"
        );
        assert_eq!(img.get_pixel(30, 5).0[3], 0, "alpha untouched");
        assert_eq!(img.get_pixel(5, 5).0, [200, 20, 20, 255]);
    }

    #[test]
    fn what_stands_beside_the_head_is_not_the_person() {
        let mut m = GrayImage::from_pixel(400, 400, Luma([255]));
        limit_to_person(&mut m, [200.0, 150.0], 40.0);
        assert_eq!(m.get_pixel(200, 150).0[0], 255, "the face");
        assert_eq!(m.get_pixel(50, 120).0[0], 0, "beside the head");
        assert_eq!(m.get_pixel(200, 5).0[0], 0, "far above the head");
        assert_eq!(m.get_pixel(40, 390).0[0], 255, "the shoulders, low down");
    }

    #[test]
    fn box_mean_is_exact_on_small_input() {
        let v = [1.0, 2.0, 3.0, 4.0];
        let m = box_mean(&v, 4, 1, 1);
        assert_eq!(m, vec![1.5, 2.0, 3.0, 3.5]);
    }
}
