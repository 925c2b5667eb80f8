//! Confirm stage: sanity checks between detection and alignment, so that the pipeline fails
//! with `no_face_detected` rather than produce a confident, wrong crop.
//!
//! [`plausible`] checks that the landmarks describe an upright-ish face inside its box;
//! [`pick_face`] chooses among several detections by the job's policy.

use super::align::eye_angle;
use super::face::{Detection, FaceLandmarks, Rect};
use facecraft_contract::ErrorCode;

/// Limits for [`plausible`]. Fractions are of the detection box (`w`, `h`) or of the
/// inter-ocular distance (IOD, centre to centre). The defaults accept the boxes of dlib's
/// HOG and MMOD detectors (tight: brows to chin, IOD ≈ 0.4 w, eyes ≈ 0.35 h down) and of
/// RetinaFace (looser, with forehead: IOD ≈ 0.35 w, eyes ≈ 0.4 h down) with room for roll,
/// moderate yaw and pitch, and landmark jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConfirmParams {
    /// How far an eye may lie outside the box, as a fraction of its width (horizontally)
    /// and height (vertically). Default: 0.1; landmark models are trained on their
    /// detector's boxes and rarely put an eye outside them.
    pub box_tolerance: f32,
    /// The eye midpoint must be in this top fraction of the box. Default: 0.6.
    pub max_eye_height: f32,
    /// Smallest IOD / box width. Default: 0.25 (a face turned ~50° still measures about
    /// 0.4 · cos 50° ≈ 0.26).
    pub min_eye_distance: f32,
    /// Largest IOD / box width. Default: 0.65.
    pub max_eye_distance: f32,
    /// The nose must be at least this many IODs below the eye line (measured at right angles
    /// to it, so roll does not matter). Default: 0.1. Anthropometric average: the nose tip is
    /// about 0.7 IOD below the pupils and the nose base (dlib's 5-point nose) about 0.9; only
    /// a strong upward pitch brings it near 0.
    pub min_nose_drop: f32,
    /// ...and at most this many. Default: 1.6 (nose base at 0.9 IOD, divided by cos 55° for
    /// a face turned sideways, which shortens the IOD but not the drop).
    pub max_nose_drop: f32,
    /// Along the eye line the nose must lie between the eyes, give or take this many IODs
    /// beyond either eye. Default: 0.25; with yaw the nose moves towards the far eye and
    /// passes it only near profile, where 5-point landmarks are unreliable anyway.
    pub nose_side_tolerance: f32,
    /// Largest eye-line roll, in degrees, either way. Default: 60. Eyes in the wrong order
    /// (roll near 180°) describe an upside-down or mirrored face.
    pub max_roll_deg: f32,
}

impl Default for ConfirmParams {
    fn default() -> Self {
        Self {
            box_tolerance: 0.1,
            max_eye_height: 0.6,
            min_eye_distance: 0.25,
            max_eye_distance: 0.65,
            min_nose_drop: 0.1,
            max_nose_drop: 1.6,
            nose_side_tolerance: 0.25,
            max_roll_deg: 60.0,
        }
    }
}

/// The first check that a detection and its landmarks failed. [`Self::check`] names it for
/// logs and metrics; to a client, every variant is [`Self::code`] `no_face_detected`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Implausible {
    /// Non-finite coordinates, an empty box, or coincident eyes.
    #[error("degenerate face geometry")]
    Degenerate,
    /// The eye line is rolled too far (or the eyes are in the wrong order).
    #[error("eye line rolled {roll_deg:.1}°, over the {max_deg}° limit")]
    Roll {
        /// Measured roll, as [`eye_angle`].
        roll_deg: f32,
        /// The limit that applied.
        max_deg: f32,
    },
    /// An eye is outside the box, beyond the tolerance.
    #[error("the {eye} eye at ({x:.0}, {y:.0}) is outside the face box")]
    EyeOutsideBox {
        /// `"left"` or `"right"`, as in [`FaceLandmarks`].
        eye: &'static str,
        /// Eye x.
        x: f32,
        /// Eye y.
        y: f32,
    },
    /// The eyes are too low in the box.
    #[error("the eyes are {fraction:.2} of the way down the face box, over {max}")]
    EyesTooLow {
        /// Eye midpoint's height in the box, 0 = top, 1 = bottom.
        fraction: f32,
        /// The limit that applied.
        max: f32,
    },
    /// The eyes are too close together or too far apart for the box.
    #[error("eye distance is {ratio:.2} of the box width, outside {min}–{max}")]
    EyeDistance {
        /// IOD / box width.
        ratio: f32,
        /// Lower limit.
        min: f32,
        /// Upper limit.
        max: f32,
    },
    /// The nose is not below the eye line by a plausible distance.
    #[error("the nose is {drop:.2} eye distances below the eye line, outside {min}–{max}")]
    NoseDrop {
        /// Distance below the eye line, perpendicular to it, in IODs (negative: above).
        drop: f32,
        /// Lower limit.
        min: f32,
        /// Upper limit.
        max: f32,
    },
    /// The nose is not between the eyes.
    #[error("the nose is at {position:.2} along the eye line (0 = left eye, 1 = right eye)")]
    NoseOffCentre {
        /// Projection onto the eye line, in IODs from the left eye.
        position: f32,
    },
}

impl Implausible {
    /// Short snake_case name of the failed check, for logs and metrics labels.
    pub fn check(&self) -> &'static str {
        match self {
            Self::Degenerate => "degenerate",
            Self::Roll { .. } => "roll",
            Self::EyeOutsideBox { .. } => "eye_outside_box",
            Self::EyesTooLow { .. } => "eyes_too_low",
            Self::EyeDistance { .. } => "eye_distance",
            Self::NoseDrop { .. } => "nose_drop",
            Self::NoseOffCentre { .. } => "nose_off_centre",
        }
    }

    /// Stable snake_case code for HTTP bodies and failed-job records: a face whose
    /// landmarks do not hold together is treated as no face at all.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::NoFaceDetected
    }
}

/// Checks that `lm` describes a plausible face in `det`, in this order: finite and
/// non-empty; roll within the limit; both eyes inside the box (with tolerance); the eye
/// midpoint in the box's upper part; eye distance in proportion to the box; nose below the
/// eye line (perpendicular to it, so a rolled face is judged in its own frame); nose between
/// the eyes along the eye line. Returns the first failure.
pub fn plausible(
    det: &Rect,
    lm: &FaceLandmarks,
    params: &ConfirmParams,
) -> Result<(), Implausible> {
    let coords = [
        det.x,
        det.y,
        det.width,
        det.height,
        lm.eye_left[0],
        lm.eye_left[1],
        lm.eye_right[0],
        lm.eye_right[1],
        lm.nose[0],
        lm.nose[1],
    ];
    if !coords.iter().all(|v| v.is_finite()) || det.width <= 0.0 || det.height <= 0.0 {
        return Err(Implausible::Degenerate);
    }
    let [lx, ly] = lm.eye_left.map(f64::from);
    let [rx, ry] = lm.eye_right.map(f64::from);
    let [nx, ny] = lm.nose.map(f64::from);
    let (ex, ey) = (rx - lx, ry - ly);
    let iod = ex.hypot(ey);
    if iod == 0.0 {
        return Err(Implausible::Degenerate);
    }

    let roll = eye_angle(lm.eye_left, lm.eye_right);
    if roll.abs() > params.max_roll_deg {
        return Err(Implausible::Roll {
            roll_deg: roll,
            max_deg: params.max_roll_deg,
        });
    }

    let (tx, ty) = (
        params.box_tolerance * det.width,
        params.box_tolerance * det.height,
    );
    for (eye, [x, y]) in [("left", lm.eye_left), ("right", lm.eye_right)] {
        let inside =
            x >= det.x - tx && x <= det.right() + tx && y >= det.y - ty && y <= det.bottom() + ty;
        if !inside {
            return Err(Implausible::EyeOutsideBox { eye, x, y });
        }
    }

    // The midpoint rather than each eye: with roll one eye legitimately drops, while the
    // midpoint stays above the face's centre.
    let fraction = (((ly + ry) / 2.0 - f64::from(det.y)) / f64::from(det.height)) as f32;
    if fraction > params.max_eye_height {
        return Err(Implausible::EyesTooLow {
            fraction,
            max: params.max_eye_height,
        });
    }

    let ratio = (iod / f64::from(det.width)) as f32;
    if ratio < params.min_eye_distance || ratio > params.max_eye_distance {
        return Err(Implausible::EyeDistance {
            ratio,
            min: params.min_eye_distance,
            max: params.max_eye_distance,
        });
    }

    // The face's own frame: u along the eye line (left → right eye), v = u turned 90°
    // clockwise on screen, i.e. "down" for an upright face. Coordinates in IODs from the
    // left eye.
    let (ux, uy) = (ex / iod, ey / iod);
    let (vx, vy) = (-uy, ux);
    let (dx, dy) = (nx - lx, ny - ly);
    let along = ((dx * ux + dy * uy) / iod) as f32;
    let drop = ((dx * vx + dy * vy) / iod) as f32;
    if drop < params.min_nose_drop || drop > params.max_nose_drop {
        return Err(Implausible::NoseDrop {
            drop,
            min: params.min_nose_drop,
            max: params.max_nose_drop,
        });
    }
    let tolerance = params.nose_side_tolerance;
    if along < -tolerance || along > 1.0 + tolerance {
        return Err(Implausible::NoseOffCentre { position: along });
    }
    Ok(())
}

/// What to do when a photo holds more than one face (DESIGN §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FacePolicy {
    /// Use the face with the largest box: in a portrait upload the subject is nearest the
    /// camera. The default, as in the reference service.
    #[default]
    Largest,
    /// Fail the job with `multiple_faces`.
    Error,
}

/// Why no face was picked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PickError {
    /// The detector found nothing.
    #[error("no face was found in the image")]
    NoFace,
    /// Several faces, and the policy is [`FacePolicy::Error`].
    #[error("{count} faces were found; the job asks for exactly one")]
    MultipleFaces {
        /// How many detections there were.
        count: usize,
    },
}

impl PickError {
    /// Stable snake_case code for HTTP bodies and failed-job records.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NoFace => ErrorCode::NoFaceDetected,
            Self::MultipleFaces { .. } => ErrorCode::MultipleFaces,
        }
    }
}

/// The detection to process under `policy`: the only one, or the one with the largest box
/// area (ties go to the higher score, then to the earlier detection, so the choice does not
/// depend on anything but the input).
pub fn pick_face(dets: &[Detection], policy: FacePolicy) -> Result<&Detection, PickError> {
    match (dets, policy) {
        ([], _) => Err(PickError::NoFace),
        ([only], _) => Ok(only),
        (_, FacePolicy::Error) => Err(PickError::MultipleFaces { count: dets.len() }),
        (_, FacePolicy::Largest) => {
            let mut best = &dets[0];
            for d in &dets[1..] {
                let by_area = d.bbox.area().total_cmp(&best.bbox.area());
                if by_area.then(d.score.total_cmp(&best.score)).is_gt() {
                    best = d;
                }
            }
            Ok(best)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 200 × 200 box at (100, 100) and a typical frontal face in it: IOD 80 (0.4 w),
    /// eyes 0.35 h down, nose base 0.9 IOD below the eyes.
    fn frontal() -> (Rect, FaceLandmarks) {
        let det = Rect {
            x: 100.0,
            y: 100.0,
            width: 200.0,
            height: 200.0,
        };
        (det, lm([160.0, 170.0], [240.0, 170.0], [200.0, 242.0]))
    }

    fn lm(eye_left: [f32; 2], eye_right: [f32; 2], nose: [f32; 2]) -> FaceLandmarks {
        FaceLandmarks {
            eye_left,
            eye_right,
            nose,
            points: vec![eye_left, eye_right, nose],
        }
    }

    /// Rotates every landmark by `deg` (clockwise on screen) about `c`.
    fn rolled(l: &FaceLandmarks, c: [f32; 2], deg: f32) -> FaceLandmarks {
        let (s, k) = deg.to_radians().sin_cos();
        let r = |[x, y]: [f32; 2]| {
            let (dx, dy) = (x - c[0], y - c[1]);
            [c[0] + k * dx - s * dy, c[1] + s * dx + k * dy]
        };
        lm(r(l.eye_left), r(l.eye_right), r(l.nose))
    }

    fn check(det: &Rect, l: &FaceLandmarks) -> Result<(), Implausible> {
        plausible(det, l, &ConfirmParams::default())
    }

    fn failed(det: &Rect, l: &FaceLandmarks) -> &'static str {
        let e = check(det, l).expect_err("should be implausible");
        assert_eq!(e.code(), "no_face_detected");
        assert!(!e.to_string().is_empty());
        e.check()
    }

    #[test]
    fn a_frontal_face_passes() {
        let (det, l) = frontal();
        assert_eq!(check(&det, &l), Ok(()));
        // Yawed: nose near the right eye, eyes a bit closer.
        assert_eq!(
            check(&det, &lm([170.0, 170.0], [230.0, 172.0], [232.0, 235.0])),
            Ok(())
        );
        // RetinaFace-style loose box: eyes lower, closer relative to the width.
        let loose = Rect {
            x: 90.0,
            y: 70.0,
            width: 230.0,
            height: 250.0,
        };
        assert_eq!(check(&loose, &l), Ok(()));
    }

    #[test]
    fn a_rolled_face_passes_in_its_own_frame() {
        let (det, l) = frontal();
        for deg in [20.0, -20.0, 35.0, -55.0] {
            let r = rolled(&l, [200.0, 200.0], deg);
            assert_eq!(check(&det, &r), Ok(()), "{deg}°");
        }
        // With 40° of roll the nose sits right of the eye *midpoint* in x by ~45 px, yet
        // it is centred between the eyes in the face's frame.
        let r = rolled(&l, [200.0, 200.0], -40.0);
        assert!(
            r.nose[0] - (r.eye_left[0] + r.eye_right[0]) / 2.0 > 40.0,
            "{r:?}"
        );
        assert_eq!(check(&det, &r), Ok(()));
    }

    #[test]
    fn too_much_roll_or_an_upside_down_face_fails() {
        let (det, l) = frontal();
        assert_eq!(failed(&det, &rolled(&l, [200.0, 200.0], 70.0)), "roll");
        assert_eq!(failed(&det, &rolled(&l, [200.0, 200.0], -65.0)), "roll");
        // Upside down: the eyes come out in the wrong order.
        let flipped = rolled(&l, [200.0, 200.0], 180.0);
        assert_eq!(
            check(&det, &flipped),
            Err(Implausible::Roll {
                roll_deg: 180.0,
                max_deg: 60.0
            })
        );
    }

    #[test]
    fn eyes_below_the_nose_fail() {
        let (det, _) = frontal();
        let l = lm([160.0, 200.0], [240.0, 200.0], [200.0, 150.0]);
        let e = check(&det, &l).expect_err("nose above the eyes");
        assert_eq!(e.check(), "nose_drop");
        match e {
            Implausible::NoseDrop { drop, .. } => assert!((drop + 0.625).abs() < 1e-5, "{drop}"),
            other => panic!("{other:?}"),
        }
        // Level with the eyes is not enough either.
        assert_eq!(
            failed(&det, &lm([160.0, 170.0], [240.0, 170.0], [200.0, 172.0])),
            "nose_drop"
        );
        // Nor is a nose somewhere down at the chin and beyond.
        assert_eq!(
            failed(&det, &lm([160.0, 170.0], [240.0, 170.0], [200.0, 310.0])),
            "nose_drop"
        );
    }

    #[test]
    fn eyes_outside_the_box_fail() {
        let (det, l) = frontal();
        let mut out = l.clone();
        out.eye_left = [60.0, 170.0];
        assert_eq!(
            check(&det, &out),
            Err(Implausible::EyeOutsideBox {
                eye: "left",
                x: 60.0,
                y: 170.0
            })
        );
        let mut above = l.clone();
        above.eye_right = [240.0, 70.0];
        assert_eq!(failed(&det, &above), "eye_outside_box");
        // Slightly outside is within the 10 % tolerance (20 px here)... provided the rest
        // still holds together.
        let near = lm([95.0, 170.0], [175.0, 170.0], [135.0, 242.0]);
        assert_eq!(check(&det, &near), Ok(()));
        let far = lm([75.0, 170.0], [155.0, 170.0], [115.0, 242.0]);
        assert_eq!(failed(&det, &far), "eye_outside_box");
    }

    #[test]
    fn eyes_low_in_the_box_fail() {
        let (det, _) = frontal();
        let l = lm([160.0, 230.0], [240.0, 230.0], [200.0, 290.0]);
        assert_eq!(failed(&det, &l), "eyes_too_low");
    }

    #[test]
    fn eye_distance_out_of_proportion_fails() {
        let (det, _) = frontal();
        // 10 px apart in a 200 px box: landmarks collapsed onto one eye.
        let tiny = lm([195.0, 170.0], [205.0, 170.0], [200.0, 180.0]);
        assert_eq!(
            check(&det, &tiny),
            Err(Implausible::EyeDistance {
                ratio: 0.05,
                min: 0.25,
                max: 0.65
            })
        );
        let wide = lm([120.0, 170.0], [280.0, 170.0], [200.0, 260.0]);
        assert_eq!(failed(&det, &wide), "eye_distance");
    }

    #[test]
    fn a_nose_beside_the_eyes_fails() {
        let (det, _) = frontal();
        assert_eq!(
            failed(&det, &lm([160.0, 170.0], [240.0, 170.0], [290.0, 240.0])),
            "nose_off_centre"
        );
        assert_eq!(
            failed(&det, &lm([160.0, 170.0], [240.0, 170.0], [130.0, 240.0])),
            "nose_off_centre"
        );
        // Up to a quarter IOD past an eye is allowed, for yaw.
        assert_eq!(
            check(&det, &lm([160.0, 170.0], [240.0, 170.0], [258.0, 240.0])),
            Ok(())
        );
    }

    #[test]
    fn degenerate_input_fails() {
        let (det, l) = frontal();
        let mut nan = l.clone();
        nan.nose = [f32::NAN, 200.0];
        assert_eq!(failed(&det, &nan), "degenerate");
        let empty = Rect { width: 0.0, ..det };
        assert_eq!(failed(&empty, &l), "degenerate");
        assert_eq!(
            failed(&det, &lm([200.0, 170.0], [200.0, 170.0], [200.0, 240.0])),
            "degenerate"
        );
    }

    fn det(x: f32, w: f32, score: f32) -> Detection {
        Detection {
            bbox: Rect {
                x,
                y: 0.0,
                width: w,
                height: w,
            },
            score,
            landmarks: None,
        }
    }

    #[test]
    fn pick_face_takes_the_largest_or_refuses_several() {
        let dets = [
            det(0.0, 50.0, 0.9),
            det(100.0, 120.0, 0.5),
            det(300.0, 80.0, 0.99),
        ];
        let picked = pick_face(&dets, FacePolicy::Largest).expect("a face");
        assert_eq!(picked.bbox.x, 100.0);

        let e = pick_face(&dets, FacePolicy::Error).expect_err("three faces");
        assert_eq!(e, PickError::MultipleFaces { count: 3 });
        assert_eq!(e.code(), "multiple_faces");
        assert!(e.to_string().contains('3'));

        for policy in [FacePolicy::Largest, FacePolicy::Error] {
            let e = pick_face(&[], policy).expect_err("none");
            assert_eq!(e.code(), "no_face_detected");
            let one = [det(7.0, 60.0, 0.1)];
            assert_eq!(pick_face(&one, policy).expect("one").bbox.x, 7.0);
        }
        assert_eq!(FacePolicy::default(), FacePolicy::Largest);
    }

    #[test]
    fn pick_face_breaks_ties_by_score_then_order() {
        let dets = [
            det(0.0, 100.0, 0.5),
            det(200.0, 100.0, 0.8),
            det(400.0, 100.0, 0.8),
        ];
        let picked = pick_face(&dets, FacePolicy::Largest).expect("a face");
        assert_eq!(picked.bbox.x, 200.0);
        // A NaN box (a broken detector) never wins over a real one.
        let dets = [det(0.0, f32::NAN, 0.9), det(200.0, 30.0, 0.1)];
        assert_eq!(
            pick_face(&dets, FacePolicy::Largest)
                .expect("a face")
                .bbox
                .x,
            200.0
        );
    }
}
