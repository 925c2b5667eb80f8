//! Framing: where the portrait's frame lies in the levelled photo, from the head's geometry
//! and the standard asked for (head height as a share of the frame, eyes on a fixed line).
//!
//! Coordinates here are *aligned* ones: the photo turned about the eye midpoint so the eyes
//! are level ([`super::align::Affine`] maps photo → aligned). The frame is an axis-aligned
//! rectangle there; wherever it reaches past the photo the portrait is filled with the
//! background rather than shrunk or shifted, and [`Frame`] users report that as padding.
//!
//! Head size comes from the inter-ocular distance (eye centre to eye centre, `iod`), the one
//! measure every landmark model gives: in adults the chin (menton) lies about 1.85 iod below
//! the pupils and the top of the skull about as far above them (anthropometric means: pupil
//! distance ≈ 62 mm, pupil to menton ≈ 115 mm, vertex to pupil ≈ 115 mm). The crown is then
//! measured on the segmentation matte where there is one (hair included, as passport rules
//! measure it), within bounds of the estimate.

use super::face::Rect;

/// Chin below the eye line, in inter-ocular distances.
pub const CHIN_IOD: f64 = 1.85;
/// Crown (top of the hair) above the eye line, in inter-ocular distances, when it cannot be
/// measured: the skull's 1.85 plus a little hair.
pub const CROWN_IOD: f64 = 2.0;
/// A measured head may differ from the estimate by this factor at most, either way; beyond
/// it the matte is taken to have merged with (or lost) something.
pub const HEAD_MEASURE_RANGE: (f64, f64) = (0.8, 1.4);

/// The head in aligned coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Head {
    /// Eye midpoint.
    pub eye: [f64; 2],
    /// Inter-ocular distance (eye centre to eye centre), > 0.
    pub iod: f64,
    /// Top of the head (y), hair included.
    pub crown: f64,
    /// Bottom of the chin (y).
    pub chin: f64,
}

impl Head {
    /// The estimate from the eyes alone.
    pub fn estimate(eye: [f64; 2], iod: f64) -> Self {
        Self {
            eye,
            iod,
            crown: eye[1] - CROWN_IOD * iod,
            chin: eye[1] + CHIN_IOD * iod,
        }
    }

    /// Chin to crown.
    pub fn height(&self) -> f64 {
        self.chin - self.crown
    }

    /// This head with the crown at `crown` when that is within [`HEAD_MEASURE_RANGE`] of the
    /// estimate; unchanged otherwise.
    pub fn with_measured_crown(self, crown: f64) -> Self {
        let measured = self.chin - crown;
        let (lo, hi) = HEAD_MEASURE_RANGE;
        if crown.is_finite() && measured >= lo * self.height() && measured <= hi * self.height() {
            Self { crown, ..self }
        } else {
            self
        }
    }

    /// The face (forehead to chin, cheek to cheek) as an ellipse: centre and semi-axes.
    pub fn face_ellipse(&self) -> ([f64; 2], [f64; 2]) {
        let top = self.eye[1] - 1.1 * self.iod;
        let bottom = self.chin + 0.05 * self.iod;
        (
            [self.eye[0], (top + bottom) / 2.0],
            [1.15 * self.iod, (bottom - top) / 2.0],
        )
    }
}

/// The composition asked for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Framing {
    /// Output width, pixels.
    pub width: u32,
    /// Output height, pixels.
    pub height: u32,
    /// Head (chin to crown) ÷ output height.
    pub head_ratio: f64,
    /// Eye line from the top ÷ output height.
    pub eye_line: f64,
}

/// The frame in aligned coordinates: its top-left corner and the output pixels per aligned
/// pixel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame {
    pub x: f64,
    pub y: f64,
    pub scale: f64,
    pub width: u32,
    pub height: u32,
}

impl Frame {
    /// Places the frame for `head`: the head fills `head_ratio` of the height, the eye
    /// midpoint sits on the eye line, centred across. If the crown would then leave the
    /// frame (a tall hairdo under a low eye line), the frame moves up just enough to keep it
    /// with 2 % of the height to spare: a cut crown is worse than a slightly high eye line.
    pub fn place(head: &Head, framing: &Framing) -> Self {
        let h = f64::from(framing.height);
        let scale = framing.head_ratio * h / head.height().max(1e-6);
        let (fw, fh) = (f64::from(framing.width) / scale, h / scale);
        let mut y = head.eye[1] - framing.eye_line * fh;
        let gap = 0.02 * fh;
        if head.crown - y < gap {
            y = head.crown - gap;
        }
        Self {
            x: head.eye[0] - fw / 2.0,
            y,
            scale,
            width: framing.width,
            height: framing.height,
        }
    }

    /// The frame's extent in aligned coordinates.
    pub fn rect(&self) -> Rect {
        Rect {
            x: self.x as f32,
            y: self.y as f32,
            width: (f64::from(self.width) / self.scale) as f32,
            height: (f64::from(self.height) / self.scale) as f32,
        }
    }

    /// Aligned → output pixel coordinates.
    pub fn to_output(&self, p: [f64; 2]) -> [f64; 2] {
        [(p[0] - self.x) * self.scale, (p[1] - self.y) * self.scale]
    }
}

/// The window segmentation runs on: the frame grown by a quarter upward (so a crown measured
/// up to [`HEAD_MEASURE_RANGE`]'s top stays inside) and a tenth the other ways, and at least
/// the person's context —
/// 1.2 face widths beside the face and 1.6 face heights below the chin — which is what lets
/// U²-Net see the shoulders as part of the subject.
pub fn context_window(head: &Head, frame: &Frame) -> Rect {
    let f = frame.rect();
    let (fx, fy, fw, fh) = (
        f64::from(f.x),
        f64::from(f.y),
        f64::from(f.width),
        f64::from(f.height),
    );
    let face_w = 2.3 * head.iod;
    let face_h = head.chin - (head.eye[1] - 1.1 * head.iod);
    let x0 = (fx - 0.1 * fw).min(head.eye[0] - (0.5 + 1.2) * face_w);
    let x1 = (fx + 1.1 * fw).max(head.eye[0] + (0.5 + 1.2) * face_w);
    let y0 = (fy - 0.25 * fh).min(head.crown - 0.5 * head.iod);
    let y1 = (fy + 1.1 * fh).max(head.chin + 1.6 * face_h);
    Rect {
        x: x0 as f32,
        y: y0 as f32,
        width: (x1 - x0) as f32,
        height: (y1 - y0) as f32,
    }
}

/// `a ∩ b`, or `None` when they do not overlap.
pub fn intersect(a: &Rect, b: &Rect) -> Option<Rect> {
    let x0 = a.x.max(b.x);
    let y0 = a.y.max(b.y);
    let x1 = a.right().min(b.right());
    let y1 = a.bottom().min(b.bottom());
    (x1 > x0 && y1 > y0).then_some(Rect {
        x: x0,
        y: y0,
        width: x1 - x0,
        height: y1 - y0,
    })
}

/// Share (0-1) of the face ellipse that lies outside the photo. `inside(p)` says whether an
/// aligned point falls on the photo. Sampled on a 32×32 grid over the ellipse's box.
pub fn face_outside_share(head: &Head, inside: impl Fn([f64; 2]) -> bool) -> f64 {
    let ([cx, cy], [ax, ay]) = head.face_ellipse();
    const N: usize = 32;
    let (mut total, mut out) = (0u32, 0u32);
    for j in 0..N {
        for i in 0..N {
            let u = (i as f64 + 0.5) / N as f64 * 2.0 - 1.0;
            let v = (j as f64 + 0.5) / N as f64 * 2.0 - 1.0;
            if u * u + v * v > 1.0 {
                continue;
            }
            total += 1;
            if !inside([cx + u * ax, cy + v * ay]) {
                out += 1;
            }
        }
    }
    f64::from(out) / f64::from(total.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing(w: u32, h: u32, ratio: f64, eye: f64) -> Framing {
        Framing {
            width: w,
            height: h,
            head_ratio: ratio,
            eye_line: eye,
        }
    }

    #[test]
    fn the_head_fills_its_share_and_the_eyes_sit_on_the_line() {
        let head = Head::estimate([300.0, 200.0], 60.0);
        let frame = Frame::place(&head, &framing(600, 800, 0.5, 0.4));
        let crown = frame.to_output([300.0, head.crown]);
        let chin = frame.to_output([300.0, head.chin]);
        let eye = frame.to_output(head.eye);
        assert!(((chin[1] - crown[1]) / 800.0 - 0.5).abs() < 1e-9);
        assert!((eye[1] / 800.0 - 0.4).abs() < 1e-9);
        assert!((eye[0] - 300.0).abs() < 1e-9, "centred across: {eye:?}");
    }

    #[test]
    fn a_crown_that_would_leave_the_frame_moves_the_frame_up() {
        let head = Head::estimate([300.0, 200.0], 60.0);
        // Head of 90 % with the eyes at 0.3: the crown would be above the top.
        let frame = Frame::place(&head, &framing(600, 600, 0.9, 0.3));
        let crown = frame.to_output([300.0, head.crown]);
        assert!((crown[1] - 12.0).abs() < 1e-6, "2 % gap kept: {crown:?}");
    }

    #[test]
    fn a_measured_crown_counts_only_near_the_estimate() {
        let head = Head::estimate([0.0, 0.0], 50.0);
        let taller = head.with_measured_crown(head.crown - 20.0);
        assert_eq!(taller.crown, head.crown - 20.0);
        let absurd = head.with_measured_crown(head.crown - 500.0);
        assert_eq!(absurd, head);
        assert_eq!(head.with_measured_crown(f64::NAN), head);
    }

    #[test]
    fn the_window_holds_the_frame_and_the_shoulders() {
        let head = Head::estimate([500.0, 400.0], 50.0);
        let frame = Frame::place(&head, &framing(648, 648, 0.5, 0.4));
        let w = context_window(&head, &frame);
        let f = frame.rect();
        assert!(w.x < f.x && w.right() > f.right() && w.y < f.y && w.bottom() > f.bottom());
        assert!(f64::from(w.bottom()) >= head.chin + 1.6 * (head.chin - (400.0 - 55.0)));
    }

    #[test]
    fn a_face_past_the_left_border_is_half_outside() {
        let head = Head::estimate([0.0, 300.0], 50.0);
        let share = face_outside_share(&head, |p| p[0] >= 0.0);
        assert!((share - 0.5).abs() < 0.03, "{share}");
        let whole = face_outside_share(&head, |p| p[0] >= -100.0);
        assert_eq!(whole, 0.0);
    }

    #[test]
    fn intersection_of_disjoint_rects_is_none() {
        let a = Rect {
            x: 0.0,
            y: 0.0,
            width: 10.0,
            height: 10.0,
        };
        let b = Rect { x: 20.0, ..a };
        assert!(intersect(&a, &b).is_none());
        let c = Rect { x: 5.0, ..a };
        assert_eq!(intersect(&a, &c).map(|r| r.width), Some(5.0));
    }
}
