//! Completeness check of a JPEG's entropy-coded scans.
//!
//! zune-jpeg (image's JPEG codec) is lenient: when a scan's data stops early it fills the
//! missing blocks and reports success, even in strict mode. A file cut half-way through its
//! scan with an end-of-image marker appended (interrupted writers and "repair" tools leave
//! these) would become a portrait whose lower half was made up. This module walks every scan
//! the way a decoder does — Huffman symbols and the bits they announce, restart markers, EOB
//! runs and the successive-approximation state of progressive files — without the IDCT, and
//! says whether each scan holds all of its blocks (ITU T.81 annexes F and G).
//!
//! Baseline, extended sequential and progressive Huffman frames (SOF0–SOF2) are walked; other
//! coding processes, frames whose height comes later (DNL) and scans using Huffman tables
//! the file does not define (motion-JPEG frames rely on the standard tables) are not, and only
//! the end-of-image marker is required of them.

/// How far [`check`] could look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every scan was walked and holds all of its blocks.
    Complete,
    /// The file ends with its end-of-image marker, but its scans could not be walked; the
    /// reason says why.
    NotWalked(&'static str),
}

/// Why a JPEG is incomplete or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// The data ends before the end-of-image marker.
    #[error("JPEG data ends before the end-of-image marker")]
    NoEndMarker,
    /// A scan's entropy-coded data stops before all of its blocks.
    #[error("JPEG scan {scan} stops after {decoded} of its {expected} coding units")]
    ShortScan {
        /// 1-based index of the scan.
        scan: usize,
        /// Units whose data was complete.
        decoded: u64,
        /// Units the frame header implies.
        expected: u64,
    },
    /// A bit sequence matches no code of the scan's Huffman table.
    #[error("JPEG scan {scan} holds a bit sequence that is no Huffman code")]
    BadCode {
        /// 1-based index of the scan.
        scan: usize,
    },
    /// A marker segment contradicts the format.
    #[error("JPEG marker segment at byte {at} is malformed: {what}")]
    Malformed {
        /// Offset of the segment's marker.
        at: usize,
        /// What is wrong with it.
        what: &'static str,
    },
}

/// Walks `bytes` (a whole JPEG file) and answers whether its scans are complete.
pub fn check(bytes: &[u8]) -> Result<Verdict, ScanError> {
    if bytes.len() < 2 || bytes[..2] != [0xFF, 0xD8] {
        return Err(ScanError::Malformed {
            at: 0,
            what: "no start-of-image marker",
        });
    }
    let mut state = State::default();
    let mut pos = 2;
    loop {
        let at = pos;
        if bytes.get(pos) != Some(&0xFF) {
            return Err(match bytes.get(pos) {
                None => ScanError::NoEndMarker,
                Some(_) => ScanError::Malformed {
                    at,
                    what: "data where a marker was expected",
                },
            });
        }
        // Any number of 0xFF fill bytes may precede a marker code.
        while bytes.get(pos) == Some(&0xFF) {
            pos += 1;
        }
        let Some(&marker) = bytes.get(pos) else {
            return Err(ScanError::NoEndMarker);
        };
        pos += 1;
        match marker {
            0xD9 => {
                return Ok(match state.not_walked {
                    None => Verdict::Complete,
                    Some(why) => Verdict::NotWalked(why),
                })
            }
            // Markers without a segment: SOI, RSTn, TEM.
            0xD8 | 0xD0..=0xD7 | 0x01 => continue,
            _ => {}
        }
        let Some(len_bytes) = bytes.get(pos..pos + 2) else {
            return Err(ScanError::NoEndMarker);
        };
        let length = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
        if length < 2 {
            return Err(ScanError::Malformed {
                at,
                what: "segment length below 2",
            });
        }
        let Some(segment) = bytes.get(pos + 2..pos + length) else {
            return Err(ScanError::NoEndMarker);
        };
        pos += length;
        match marker {
            0xC4 => state.define_tables(segment, at)?,
            0xC0..=0xC2 => state.frame(segment, marker == 0xC2, at)?,
            0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                state.not_walked = Some("lossless, hierarchical or arithmetic-coded frame");
            }
            0xDD => {
                let ri = segment.get(..2).ok_or(ScanError::Malformed {
                    at,
                    what: "short restart interval segment",
                })?;
                state.restart_interval = u32::from(u16::from_be_bytes([ri[0], ri[1]]));
            }
            0xDA => {
                state.scans += 1;
                let scan = state.scan_header(segment, at)?;
                pos = match scan {
                    Some(scan) => state.walk(bytes, pos, &scan)?,
                    None => next_marker(bytes, pos).ok_or(ScanError::NoEndMarker)?,
                };
            }
            _ => {}
        }
    }
}

/// Canonical Huffman decoding table (T.81 §F.2.2.3), decoded bit by bit.
struct Huffman {
    max_code: [i32; 17],
    min_code: [i32; 17],
    first_value: [usize; 17],
    values: Vec<u8>,
}

impl Huffman {
    fn new(counts: &[u8], values: &[u8]) -> Option<Self> {
        let mut table = Self {
            max_code: [-1; 17],
            min_code: [0; 17],
            first_value: [0; 17],
            values: values.to_vec(),
        };
        let (mut code, mut index) = (0i32, 0usize);
        for length in 1..=16 {
            let count = i32::from(counts[length - 1]);
            table.first_value[length] = index;
            table.min_code[length] = code;
            code += count;
            index += usize::from(counts[length - 1]);
            if count > 0 {
                table.max_code[length] = code - 1;
            }
            // More codes of this length than the length can hold.
            if code > 1 << length {
                return None;
            }
            code <<= 1;
        }
        Some(table)
    }

    fn decode(&self, bits: &mut Bits<'_>) -> Result<u8, Stop> {
        let mut code = 0i32;
        for length in 1..=16 {
            code = (code << 1) | bits.bit()? as i32;
            if code <= self.max_code[length] {
                let i = self.first_value[length] + (code - self.min_code[length]) as usize;
                return self.values.get(i).copied().ok_or(Stop::BadCode);
            }
        }
        Err(Stop::BadCode)
    }
}

/// Why a block could not be read.
enum Stop {
    /// The entropy-coded data ended (a marker or the end of the file).
    Exhausted,
    BadCode,
}

/// Bit reader over entropy-coded data: `FF 00` is a literal 0xFF; any other `FF xx` is a
/// marker, where the data ends.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    byte: u32,
    left: u32,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8], pos: usize) -> Self {
        Self {
            data,
            pos,
            byte: 0,
            left: 0,
        }
    }

    fn bit(&mut self) -> Result<u32, Stop> {
        if self.left == 0 {
            let b = *self.data.get(self.pos).ok_or(Stop::Exhausted)?;
            if b == 0xFF {
                if self.data.get(self.pos + 1) != Some(&0x00) {
                    return Err(Stop::Exhausted);
                }
                self.pos += 2;
            } else {
                self.pos += 1;
            }
            self.byte = u32::from(b);
            self.left = 8;
        }
        self.left -= 1;
        Ok((self.byte >> self.left) & 1)
    }

    fn bits(&mut self, count: u8) -> Result<u32, Stop> {
        let mut v = 0;
        for _ in 0..count {
            v = (v << 1) | self.bit()?;
        }
        Ok(v)
    }

    /// At a restart boundary: drops the padding bits and steps over the RSTn marker.
    /// `false` when the next marker is not a restart marker.
    fn restart(&mut self) -> bool {
        self.left = 0;
        match next_marker_or_restart(self.data, self.pos) {
            Some((at, code)) if (0xD0..=0xD7).contains(&code) => {
                self.pos = at + 2;
                true
            }
            _ => false,
        }
    }
}

/// Offset of the next marker at or after `pos` that is neither stuffing nor RSTn.
fn next_marker(bytes: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let (at, code) = next_marker_or_restart(bytes, pos)?;
        if (0xD0..=0xD7).contains(&code) {
            pos = at + 2;
        } else {
            return Some(at);
        }
    }
}

/// Offset and code of the next marker at or after `pos`, restart markers included.
fn next_marker_or_restart(bytes: &[u8], mut pos: usize) -> Option<(usize, u8)> {
    while pos + 1 < bytes.len() {
        if bytes[pos] == 0xFF {
            match bytes[pos + 1] {
                0x00 => pos += 2,
                0xFF => pos += 1,
                code => return Some((pos, code)),
            }
        } else {
            pos += 1;
        }
    }
    None
}

#[derive(Clone, Copy)]
struct Component {
    id: u8,
    h: u32,
    v: u32,
    /// Blocks that carry image data, per row and column.
    blocks_w: u32,
    blocks_h: u32,
    /// Blocks of the MCU grid, which pads the component to whole MCUs.
    padded_w: u32,
}

#[derive(Default)]
struct Frame {
    progressive: bool,
    components: Vec<Component>,
    mcus_x: u32,
    mcus_y: u32,
}

struct Scan {
    /// Indices into the frame's components, with their DC and AC table numbers.
    components: Vec<(usize, usize, usize)>,
    ss: u8,
    se: u8,
    ah: u8,
}

/// Frames above this many blocks are not walked: the progressive state costs 8 bytes a block,
/// and decode's pixel limit rejects such frames before this runs anyway.
const MAX_WALKED_BLOCKS: u64 = 1 << 26;

#[derive(Default)]
struct State {
    dc: [Option<Huffman>; 4],
    ac: [Option<Huffman>; 4],
    frame: Option<Frame>,
    restart_interval: u32,
    scans: usize,
    not_walked: Option<&'static str>,
    /// Per component, per block of its padded grid: which of the 64 coefficients are nonzero
    /// so far (progressive AC refinement reads a correction bit for each of them).
    nonzero: Vec<Vec<u64>>,
}

impl State {
    fn define_tables(&mut self, mut segment: &[u8], at: usize) -> Result<(), ScanError> {
        let malformed = |what| ScanError::Malformed { at, what };
        while !segment.is_empty() {
            let class_id = segment[0];
            let counts = segment.get(1..17).ok_or(malformed("short Huffman table"))?;
            let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
            let values = segment
                .get(17..17 + total)
                .ok_or(malformed("short Huffman table"))?;
            let table =
                Huffman::new(counts, values).ok_or(malformed("oversubscribed Huffman table"))?;
            let (class, id) = (class_id >> 4, usize::from(class_id & 0x0F));
            match (class, id) {
                (0, 0..=3) => self.dc[id] = Some(table),
                (1, 0..=3) => self.ac[id] = Some(table),
                _ => return Err(malformed("Huffman table class or number out of range")),
            }
            segment = &segment[17 + total..];
        }
        Ok(())
    }

    fn frame(&mut self, segment: &[u8], progressive: bool, at: usize) -> Result<(), ScanError> {
        let malformed = |what| ScanError::Malformed { at, what };
        if self.frame.is_some() {
            return Err(malformed("a second frame header"));
        }
        let header = segment.get(..6).ok_or(malformed("short frame header"))?;
        let height = u32::from(u16::from_be_bytes([header[1], header[2]]));
        let width = u32::from(u16::from_be_bytes([header[3], header[4]]));
        let count = usize::from(header[5]);
        let specs = segment
            .get(6..6 + 3 * count)
            .ok_or(malformed("short frame header"))?;
        if count == 0 || count > 4 {
            return Err(malformed("component count outside 1..=4"));
        }
        let mut components = Vec::with_capacity(count);
        for spec in specs.chunks_exact(3) {
            let (h, v) = (u32::from(spec[1] >> 4), u32::from(spec[1] & 0x0F));
            if !(1..=4).contains(&h) || !(1..=4).contains(&v) {
                return Err(malformed("sampling factor outside 1..=4"));
            }
            components.push(Component {
                id: spec[0],
                h,
                v,
                blocks_w: 0,
                blocks_h: 0,
                padded_w: 0,
            });
        }
        if width == 0 {
            return Err(malformed("zero width"));
        }
        if height == 0 {
            // The height arrives in a DNL segment after the first scan.
            self.not_walked = Some("height defined by a DNL segment");
            return Ok(());
        }
        let h_max = components.iter().map(|c| c.h).max().unwrap_or(1);
        let v_max = components.iter().map(|c| c.v).max().unwrap_or(1);
        let mcus_x = width.div_ceil(8 * h_max);
        let mcus_y = height.div_ceil(8 * v_max);
        let mut blocks = 0u64;
        for c in &mut components {
            c.blocks_w = (width * c.h).div_ceil(h_max).div_ceil(8);
            c.blocks_h = (height * c.v).div_ceil(v_max).div_ceil(8);
            c.padded_w = mcus_x * c.h;
            blocks += u64::from(c.padded_w) * u64::from(mcus_y * c.v);
        }
        if blocks > MAX_WALKED_BLOCKS {
            self.not_walked = Some("frame too large to walk");
            return Ok(());
        }
        if progressive {
            self.nonzero = components
                .iter()
                .map(|c| vec![0u64; (c.padded_w * mcus_y * c.v) as usize])
                .collect();
        }
        self.frame = Some(Frame {
            progressive,
            components,
            mcus_x,
            mcus_y,
        });
        Ok(())
    }

    /// Parses a scan header; `None` when the scan cannot be walked (and records why).
    fn scan_header(&mut self, segment: &[u8], at: usize) -> Result<Option<Scan>, ScanError> {
        let malformed = |what| ScanError::Malformed { at, what };
        if self.not_walked.is_some() {
            return Ok(None);
        }
        let Some(frame) = &self.frame else {
            return Err(malformed("scan before the frame header"));
        };
        let count = usize::from(*segment.first().ok_or(malformed("short scan header"))?);
        let specs = segment
            .get(1..1 + 2 * count)
            .ok_or(malformed("short scan header"))?;
        let tail = segment
            .get(1 + 2 * count..4 + 2 * count)
            .ok_or(malformed("short scan header"))?;
        if count == 0 || count > 4 {
            return Err(malformed("scan component count outside 1..=4"));
        }
        let mut components = Vec::with_capacity(count);
        for spec in specs.chunks_exact(2) {
            let index = frame
                .components
                .iter()
                .position(|c| c.id == spec[0])
                .ok_or(malformed("scan names a component the frame lacks"))?;
            let (dc, ac) = (usize::from(spec[1] >> 4), usize::from(spec[1] & 0x0F));
            if dc > 3 || ac > 3 {
                return Err(malformed("Huffman table number out of range"));
            }
            components.push((index, dc, ac));
        }
        let (ss, se, ah) = (tail[0], tail[1], tail[2] >> 4);
        if frame.progressive {
            let valid = se <= 63 && ss <= se && (ss == 0) == (se == 0) && (ss == 0 || count == 1);
            if !valid {
                return Err(malformed("invalid progressive scan parameters"));
            }
        }
        let sequential = !frame.progressive;
        let needs_dc = sequential || (ss == 0 && ah == 0);
        let needs_ac = sequential || ss > 0;
        let missing = components.iter().any(|&(_, dc, ac)| {
            (needs_dc && self.dc[dc].is_none()) || (needs_ac && self.ac[ac].is_none())
        });
        if missing {
            self.not_walked = Some("scan uses Huffman tables the file does not define");
            return Ok(None);
        }
        Ok(Some(Scan {
            components,
            ss,
            se: if sequential { 63 } else { se },
            ah,
        }))
    }

    /// Reads every coding unit of `scan` from `pos`; answers where the next marker starts.
    fn walk(&mut self, bytes: &[u8], pos: usize, scan: &Scan) -> Result<usize, ScanError> {
        let Some(frame) = self.frame.take() else {
            return Ok(pos);
        };
        let result = self.walk_units(bytes, pos, scan, &frame);
        self.frame = Some(frame);
        result
    }

    fn walk_units(
        &mut self,
        bytes: &[u8],
        pos: usize,
        scan: &Scan,
        frame: &Frame,
    ) -> Result<usize, ScanError> {
        let interleaved = scan.components.len() > 1;
        let units = if interleaved {
            u64::from(frame.mcus_x) * u64::from(frame.mcus_y)
        } else {
            let c = frame.components[scan.components[0].0];
            u64::from(c.blocks_w) * u64::from(c.blocks_h)
        };
        let mut bits = Bits::new(bytes, pos);
        let mut eob_run = 0u32;
        let ri = u64::from(self.restart_interval);
        let scan_number = self.scans;
        let short = |decoded| ScanError::ShortScan {
            scan: scan_number,
            decoded,
            expected: units,
        };
        for unit in 0..units {
            if ri > 0 && unit > 0 && unit % ri == 0 {
                if !bits.restart() {
                    return Err(short(unit));
                }
                eob_run = 0;
            }
            let outcome = if interleaved {
                let (mx, my) = (
                    (unit % u64::from(frame.mcus_x)) as u32,
                    (unit / u64::from(frame.mcus_x)) as u32,
                );
                let mut outcome = Ok(());
                'mcu: for &(index, dc, ac) in &scan.components {
                    let c = frame.components[index];
                    for by in 0..c.v {
                        for bx in 0..c.h {
                            let block = ((my * c.v + by) * c.padded_w + mx * c.h + bx) as usize;
                            outcome = self.block(
                                &mut bits,
                                scan,
                                frame,
                                index,
                                block,
                                dc,
                                ac,
                                &mut eob_run,
                            );
                            if outcome.is_err() {
                                break 'mcu;
                            }
                        }
                    }
                }
                outcome
            } else {
                let (index, dc, ac) = scan.components[0];
                let c = frame.components[index];
                let (col, row) = (
                    (unit % u64::from(c.blocks_w)) as u32,
                    (unit / u64::from(c.blocks_w)) as u32,
                );
                let block = (row * c.padded_w + col) as usize;
                self.block(&mut bits, scan, frame, index, block, dc, ac, &mut eob_run)
            };
            match outcome {
                Ok(()) => {}
                Err(Stop::Exhausted) => return Err(short(unit)),
                Err(Stop::BadCode) => return Err(ScanError::BadCode { scan: scan_number }),
            }
        }
        next_marker(bytes, bits.pos).ok_or(ScanError::NoEndMarker)
    }

    #[allow(clippy::too_many_arguments)]
    fn block(
        &mut self,
        bits: &mut Bits<'_>,
        scan: &Scan,
        frame: &Frame,
        component: usize,
        block: usize,
        dc: usize,
        ac: usize,
        eob_run: &mut u32,
    ) -> Result<(), Stop> {
        // `scan_header` checked that the tables this kind of scan uses exist.
        if !frame.progressive {
            let dc = self.dc[dc].as_ref().ok_or(Stop::BadCode)?;
            let ac = self.ac[ac].as_ref().ok_or(Stop::BadCode)?;
            return sequential_block(bits, dc, ac);
        }
        if scan.ss == 0 {
            if scan.ah == 0 {
                let dc = self.dc[dc].as_ref().ok_or(Stop::BadCode)?;
                let size = dc.decode(bits)?;
                bits.bits(size.min(16))?;
            } else {
                bits.bit()?;
            }
            return Ok(());
        }
        let ac = self.ac[ac].as_ref().ok_or(Stop::BadCode)?;
        let mask = self
            .nonzero
            .get_mut(component)
            .and_then(|m| m.get_mut(block))
            .ok_or(Stop::BadCode)?;
        if scan.ah == 0 {
            ac_first(bits, ac, scan.ss, scan.se, eob_run, mask)
        } else {
            ac_refine(bits, ac, scan.ss, scan.se, eob_run, mask)
        }
    }
}

/// One block of a sequential scan (T.81 §F.2.2).
fn sequential_block(bits: &mut Bits<'_>, dc: &Huffman, ac: &Huffman) -> Result<(), Stop> {
    let size = dc.decode(bits)?;
    bits.bits(size.min(16))?;
    let mut k = 1;
    while k < 64 {
        let rs = ac.decode(bits)?;
        let (run, size) = (rs >> 4, rs & 0x0F);
        if size == 0 {
            if run != 15 {
                break; // end of block
            }
            k += 16;
            continue;
        }
        k += usize::from(run);
        bits.bits(size)?;
        k += 1;
    }
    Ok(())
}

/// First AC scan of a spectral band (T.81 §G.1.2.2).
fn ac_first(
    bits: &mut Bits<'_>,
    ac: &Huffman,
    ss: u8,
    se: u8,
    eob_run: &mut u32,
    nonzero: &mut u64,
) -> Result<(), Stop> {
    if *eob_run > 0 {
        *eob_run -= 1;
        return Ok(());
    }
    let mut k = u32::from(ss);
    while k <= u32::from(se) {
        let rs = ac.decode(bits)?;
        let (run, size) = (rs >> 4, rs & 0x0F);
        if size == 0 {
            if run < 15 {
                *eob_run = (1u32 << run) - 1 + bits.bits(run)?;
                break;
            }
            k += 16;
            continue;
        }
        k += u32::from(run);
        bits.bits(size)?;
        if k < 64 {
            *nonzero |= 1 << k;
        }
        k += 1;
    }
    Ok(())
}

/// Refinement AC scan (T.81 §G.1.2.3): a correction bit for every coefficient already
/// nonzero that the scan passes, plus newly nonzero ones.
fn ac_refine(
    bits: &mut Bits<'_>,
    ac: &Huffman,
    ss: u8,
    se: u8,
    eob_run: &mut u32,
    nonzero: &mut u64,
) -> Result<(), Stop> {
    let se = u32::from(se);
    let mut k = u32::from(ss);
    let is_set = |mask: u64, k: u32| k < 64 && mask & (1 << k) != 0;
    if *eob_run == 0 {
        while k <= se {
            let rs = ac.decode(bits)?;
            let (mut run, size) = (rs >> 4, rs & 0x0F);
            if size == 0 && run != 15 {
                *eob_run = (1u32 << run) + bits.bits(run)?;
                break;
            }
            if size != 0 {
                bits.bit()?; // sign of the new coefficient
            }
            while k <= se {
                if is_set(*nonzero, k) {
                    bits.bit()?;
                } else {
                    if run == 0 {
                        break;
                    }
                    run -= 1;
                }
                k += 1;
            }
            if size != 0 && k <= se && k < 64 {
                *nonzero |= 1 << k;
            }
            k += 1;
        }
    }
    if *eob_run > 0 {
        while k <= se {
            if is_set(*nonzero, k) {
                bits.bit()?;
            }
            k += 1;
        }
        *eob_run -= 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::process::{Command, Stdio};

    use image::codecs::jpeg::JpegEncoder;
    use image::{DynamicImage, RgbImage};

    use super::*;

    fn astronaut(width: u32, height: u32) -> RgbImage {
        let photo = crate::testdata::rgb("astronaut.png");
        image::imageops::crop_imm(&photo, 40, 30, width, height).to_image()
    }

    fn image_crate_jpeg(img: &RgbImage) -> Vec<u8> {
        let mut out = Vec::new();
        JpegEncoder::new_with_quality(&mut out, 85)
            .encode_image(&DynamicImage::ImageRgb8(img.clone()))
            .expect("encode");
        out
    }

    /// libjpeg-turbo's `cjpeg`, which writes the progressive files with successive
    /// approximation, restart intervals and sampling factors that cameras and browsers
    /// produce. `None` (with a loud note) only outside CI, where `.ci/run` installs it.
    fn cjpeg(img: &RgbImage, args: &[&str]) -> Option<Vec<u8>> {
        let child = Command::new("cjpeg")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(e) if std::env::var_os("CI").is_none() => {
                eprintln!("SKIPPED: cjpeg not runnable ({e}); install libjpeg-turbo-progs");
                return None;
            }
            Err(e) => panic!("cjpeg is needed in CI (libjpeg-turbo-progs): {e}"),
        };
        let mut ppm = format!("P6\n{} {}\n255\n", img.width(), img.height()).into_bytes();
        ppm.extend_from_slice(img.as_raw());
        let mut stdin = child.stdin.take().expect("stdin");
        let writer = std::thread::spawn(move || stdin.write_all(&ppm));
        let out = child.wait_with_output().expect("cjpeg runs");
        writer.join().expect("writer").expect("ppm written");
        assert!(out.status.success(), "cjpeg {args:?} failed");
        Some(out.stdout)
    }

    const VARIANTS: &[&[&str]] = &[
        &[],
        &["-optimize"],
        &["-sample", "1x1"],
        &["-sample", "2x1"],
        &["-sample", "1x2"],
        &["-grayscale"],
        &["-restart", "1"],
        &["-restart", "3B"],
        &["-progressive"],
        &["-progressive", "-sample", "1x1"],
        &["-progressive", "-restart", "2B"],
        &["-progressive", "-grayscale"],
    ];

    fn with_end_marker(bytes: &[u8], cut: usize) -> Vec<u8> {
        let mut v = bytes[..cut].to_vec();
        v.extend_from_slice(&[0xFF, 0xD9]);
        v
    }

    /// Offset of the first byte after the first SOS segment.
    fn first_scan_data(bytes: &[u8]) -> usize {
        let sos = bytes
            .windows(2)
            .position(|w| w == [0xFF, 0xDA])
            .expect("SOS");
        sos + 2 + usize::from(u16::from_be_bytes([bytes[sos + 2], bytes[sos + 3]]))
    }

    #[test]
    fn whole_files_are_complete() {
        // 301×217: neither side a multiple of 16, so edge MCUs are partial.
        for (w, h) in [(301, 217), (256, 256)] {
            let img = astronaut(w, h);
            assert_eq!(check(&image_crate_jpeg(&img)), Ok(Verdict::Complete));
            for args in VARIANTS {
                let Some(jpeg) = cjpeg(&img, args) else {
                    return;
                };
                assert_eq!(
                    check(&jpeg),
                    Ok(Verdict::Complete),
                    "cjpeg {args:?} {w}×{h}"
                );
                // Bytes after the end marker do not matter.
                let mut padded = jpeg.clone();
                padded.extend_from_slice(&[0; 64]);
                assert_eq!(check(&padded), Ok(Verdict::Complete), "padded {args:?}");
            }
        }
    }

    #[test]
    fn every_cut_with_an_end_marker_appended_is_caught() {
        let img = astronaut(301, 217);
        let mut files = vec![(vec!["image crate"], image_crate_jpeg(&img))];
        for args in VARIANTS {
            let Some(jpeg) = cjpeg(&img, args) else {
                return;
            };
            files.push((args.to_vec(), jpeg));
        }
        for (what, jpeg) in files {
            let start = first_scan_data(&jpeg);
            let end = jpeg.len() - 2; // the original end marker
            let step = ((end - start) / 97).max(1);
            let mut checked = 0;
            for cut in (start..end).step_by(step).chain([end - 1]) {
                // A cut exactly at a segment boundary of a progressive file leaves whole
                // scans only: a coarser but complete image.
                let at_marker = jpeg[cut] == 0xFF && !matches!(jpeg[cut + 1], 0x00 | 0xD0..=0xD7);
                if at_marker {
                    continue;
                }
                let got = check(&with_end_marker(&jpeg, cut));
                assert!(
                    matches!(
                        got,
                        Err(ScanError::ShortScan { .. }
                            | ScanError::BadCode { .. }
                            | ScanError::NoEndMarker)
                    ),
                    "{what:?} cut at {cut} of {}: {got:?}",
                    jpeg.len()
                );
                checked += 1;
            }
            assert!(checked > 90, "{what:?}: only {checked} cuts");
        }
    }

    #[test]
    fn a_short_scan_reports_how_far_it_got() {
        let jpeg = image_crate_jpeg(&astronaut(256, 256));
        let start = first_scan_data(&jpeg);
        let cut = start + (jpeg.len() - start) / 2;
        match check(&with_end_marker(&jpeg, cut)) {
            Err(ScanError::ShortScan {
                scan: 1,
                decoded,
                expected,
            }) => {
                assert!(
                    decoded > expected / 4 && decoded < expected * 3 / 4,
                    "{decoded}/{expected}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_plain_truncation_has_no_end_marker() {
        let jpeg = image_crate_jpeg(&astronaut(64, 64));
        for cut in [3, 20, jpeg.len() / 2, jpeg.len() - 1] {
            assert!(check(&jpeg[..cut]).is_err(), "cut at {cut}");
        }
        assert!(check(&jpeg[..jpeg.len() - 2]).is_err());
    }

    #[test]
    fn files_without_huffman_tables_are_not_walked_but_need_their_end_marker() {
        // Motion-JPEG frames leave out DHT and rely on the standard tables.
        let jpeg = image_crate_jpeg(&astronaut(64, 64));
        let mut stripped = jpeg[..2].to_vec();
        let mut pos = 2;
        while jpeg[pos + 1] != 0xDA {
            let len = usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
            if jpeg[pos + 1] != 0xC4 {
                stripped.extend_from_slice(&jpeg[pos..pos + 2 + len]);
            }
            pos += 2 + len;
        }
        stripped.extend_from_slice(&jpeg[pos..]);
        assert!(matches!(check(&stripped), Ok(Verdict::NotWalked(_))));
        assert_eq!(
            check(&stripped[..stripped.len() - 10]),
            Err(ScanError::NoEndMarker)
        );
    }

    #[test]
    fn arithmetic_coding_is_not_walked() {
        let Some(jpeg) = cjpeg(&astronaut(64, 64), &["-arithmetic"]) else {
            return;
        };
        assert!(matches!(check(&jpeg), Ok(Verdict::NotWalked(_))));
    }

    #[test]
    fn malformed_headers_are_errors_not_panics() {
        assert!(check(b"").is_err());
        assert!(check(b"\xFF\xD8").is_err());
        assert!(check(b"\xFF\xD8\xFF\xDA\x00\x08\x01\x01\x00\x00\x3F\x00\xFF\xD9").is_err());
        // Sixteen-plus one-bit codes: more codes of length 1 than length 1 can hold.
        let mut dht = vec![0xFF, 0xD8, 0xFF, 0xC4, 0x00, 0x16, 0x00, 3];
        dht.extend_from_slice(&[0; 15]);
        dht.extend_from_slice(&[1, 2, 3, 0xFF, 0xD9]);
        assert!(matches!(
            check(&dht),
            Err(ScanError::Malformed {
                what: "oversubscribed Huffman table",
                ..
            })
        ));
        // A frame header with zero components, and a 0×0 one.
        let frame = b"\xFF\xD8\xFF\xC0\x00\x08\x08\x00\x10\x00\x10\x00\xFF\xD9";
        assert!(check(frame).is_err());
    }

    #[test]
    fn walking_arbitrary_bytes_never_panics() {
        let jpeg = image_crate_jpeg(&astronaut(48, 40));
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..400 {
            let mut bytes = jpeg.clone();
            for _ in 0..4 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let i = (state % bytes.len() as u64) as usize;
                bytes[i] = (state >> 32) as u8;
            }
            let _ = check(&bytes);
        }
    }
}
