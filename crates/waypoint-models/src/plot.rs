//! The evaluations' figures as small raster plots written as PNG: line charts with axes, tick
//! labels and a legend, scatter views, and KITTI bird's-eye views. Text uses a built-in 5×7
//! bitmap font so no font files are needed.

use std::path::Path;

use crate::detection::classifier::CLASSES;
use crate::detection::eval_kitti::JudgedFrame;
use crate::detection::{boxfit, kitti};
use crate::ModelError;

type Result<T> = std::result::Result<T, ModelError>;

/// An RGB image.
pub struct Canvas {
    pub w: usize,
    pub h: usize,
    px: Vec<[u8; 3]>,
}

pub const BG: [u8; 3] = [17, 21, 28];
pub const FG: [u8; 3] = [216, 222, 233];
pub const GRID: [u8; 3] = [46, 52, 64];
pub const COLORS: [[u8; 3]; 6] =
    [[136, 192, 208], [235, 203, 139], [191, 97, 106], [163, 190, 140], [180, 142, 173], [208, 135, 112]];

fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        '0' => [14, 17, 19, 21, 25, 17, 14],
        '1' => [4, 12, 4, 4, 4, 4, 14],
        '2' => [14, 17, 1, 2, 4, 8, 31],
        '3' => [31, 2, 4, 2, 1, 17, 14],
        '4' => [2, 6, 10, 18, 31, 2, 2],
        '5' => [31, 16, 30, 1, 1, 17, 14],
        '6' => [6, 8, 16, 30, 17, 17, 14],
        '7' => [31, 1, 2, 4, 8, 8, 8],
        '8' => [14, 17, 17, 14, 17, 17, 14],
        '9' => [14, 17, 17, 15, 1, 2, 12],
        'A' => [14, 17, 17, 31, 17, 17, 17],
        'B' => [30, 17, 17, 30, 17, 17, 30],
        'C' => [14, 17, 16, 16, 16, 17, 14],
        'D' => [28, 18, 17, 17, 17, 18, 28],
        'E' => [31, 16, 16, 30, 16, 16, 31],
        'F' => [31, 16, 16, 30, 16, 16, 16],
        'G' => [14, 17, 16, 23, 17, 17, 15],
        'H' => [17, 17, 17, 31, 17, 17, 17],
        'I' => [14, 4, 4, 4, 4, 4, 14],
        'J' => [7, 2, 2, 2, 2, 18, 12],
        'K' => [17, 18, 20, 24, 20, 18, 17],
        'L' => [16, 16, 16, 16, 16, 16, 31],
        'M' => [17, 27, 21, 21, 17, 17, 17],
        'N' => [17, 17, 25, 21, 19, 17, 17],
        'O' => [14, 17, 17, 17, 17, 17, 14],
        'P' => [30, 17, 17, 30, 16, 16, 16],
        'Q' => [14, 17, 17, 17, 21, 18, 13],
        'R' => [30, 17, 17, 30, 20, 18, 17],
        'S' => [15, 16, 16, 14, 1, 1, 30],
        'T' => [31, 4, 4, 4, 4, 4, 4],
        'U' => [17, 17, 17, 17, 17, 17, 14],
        'V' => [17, 17, 17, 17, 17, 10, 4],
        'W' => [17, 17, 17, 21, 21, 21, 10],
        'X' => [17, 17, 10, 4, 10, 17, 17],
        'Y' => [17, 17, 17, 10, 4, 4, 4],
        'Z' => [31, 1, 2, 4, 8, 16, 31],
        '.' => [0, 0, 0, 0, 0, 12, 12],
        ',' => [0, 0, 0, 0, 12, 4, 8],
        '-' => [0, 0, 0, 31, 0, 0, 0],
        '+' => [0, 4, 4, 31, 4, 4, 0],
        '=' => [0, 0, 31, 0, 31, 0, 0],
        ':' => [0, 12, 12, 0, 12, 12, 0],
        '/' => [1, 1, 2, 4, 8, 16, 16],
        '%' => [24, 25, 2, 4, 8, 19, 3],
        '(' => [2, 4, 8, 8, 8, 4, 2],
        ')' => [8, 4, 2, 2, 2, 4, 8],
        '_' => [0, 0, 0, 0, 0, 0, 31],
        '[' => [14, 8, 8, 8, 8, 8, 14],
        ']' => [14, 2, 2, 2, 2, 2, 14],
        _ => [0; 7],
    }
}

impl Canvas {
    pub fn new(w: usize, h: usize) -> Self {
        Self { w, h, px: vec![BG; w * h] }
    }

    pub fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.w && (y as usize) < self.h {
            self.px[y as usize * self.w + x as usize] = c;
        }
    }

    pub fn line(&mut self, x0: f64, y0: f64, x1: f64, y1: f64, c: [u8; 3]) {
        let n = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).clamp(1, 10_000);
        for i in 0..=n {
            let t = i as f64 / n as f64;
            self.set((x0 + (x1 - x0) * t).round() as i64, (y0 + (y1 - y0) * t).round() as i64, c);
        }
    }

    pub fn dot(&mut self, x: f64, y: f64, r: i64, c: [u8; 3]) {
        for dy in -r..=r {
            for dx in -r..=r {
                if dx * dx + dy * dy <= r * r {
                    self.set(x.round() as i64 + dx, y.round() as i64 + dy, c);
                }
            }
        }
    }

    pub fn rect(&mut self, x0: f64, y0: f64, x1: f64, y1: f64, c: [u8; 3]) {
        self.line(x0, y0, x1, y0, c);
        self.line(x1, y0, x1, y1, c);
        self.line(x1, y1, x0, y1, c);
        self.line(x0, y1, x0, y0, c);
    }

    /// Text with its top-left corner at (x, y), `scale` pixels per font pixel.
    pub fn text(&mut self, x: i64, y: i64, s: &str, c: [u8; 3], scale: i64) {
        for (k, ch) in s.chars().enumerate() {
            let g = glyph(ch);
            for (row, bits) in g.iter().enumerate() {
                for col in 0..5 {
                    if bits & (1 << (4 - col)) != 0 {
                        for sy in 0..scale {
                            for sx in 0..scale {
                                self.set(x + (k as i64 * 6 + col) * scale + sx, y + row as i64 * scale + sy, c);
                            }
                        }
                    }
                }
            }
        }
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let err = |e: &dyn std::fmt::Display| ModelError::Data(format!("cannot write {}: {e}", path.display()));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
        }
        let file = std::fs::File::create(path).map_err(|e| err(&e))?;
        let mut enc = png::Encoder::new(std::io::BufWriter::new(file), self.w as u32, self.h as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(|e| err(&e))?;
        let flat: Vec<u8> = self.px.iter().flatten().copied().collect();
        writer.write_image_data(&flat).map_err(|e| err(&e))?;
        Ok(())
    }
}

/// A named series of (x, y) points.
pub struct Series<'a> {
    pub name: &'a str,
    pub points: Vec<(f64, f64)>,
    /// Draw as dots instead of a line.
    pub dots: bool,
}

fn nice_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(1e-12);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| span / s <= 6.0).unwrap_or(mag * 10.0);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + 1e-9 && out.len() < 20 {
        out.push(t);
        t += step;
    }
    out
}

fn fmt_tick(v: f64) -> String {
    if v.abs() >= 1000.0 || (v != 0.0 && v.abs() < 0.01) {
        format!("{v:.1e}")
    } else if v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}").trim_end_matches('0').to_string()
    }
}

/// Draws a chart into the rectangle (x, y, w, h) of the canvas.
pub fn chart(
    c: &mut Canvas,
    area: (usize, usize, usize, usize),
    title: &str,
    x_label: &str,
    series: &[Series],
    equal_axes: bool,
) {
    let (ax, ay, aw, ah) = area;
    let (left, right, top, bottom) =
        (ax as f64 + 70.0, (ax + aw) as f64 - 15.0, ay as f64 + 30.0, (ay + ah) as f64 - 40.0);
    let pts = series.iter().flat_map(|s| s.points.iter()).filter(|p| p.0.is_finite() && p.1.is_finite());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for p in pts {
        x0 = x0.min(p.0);
        x1 = x1.max(p.0);
        y0 = y0.min(p.1);
        y1 = y1.max(p.1);
    }
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 - x0 < 1e-9 {
        x1 = x0 + 1.0;
    }
    if y1 - y0 < 1e-9 {
        y1 = y0 + 1.0;
    }
    let pad = (y1 - y0) * 0.05;
    (y0, y1) = (y0 - pad, y1 + pad);
    if equal_axes {
        let sx = (x1 - x0) / (right - left);
        let sy = (y1 - y0) / (bottom - top);
        let s = sx.max(sy);
        let (cx, cy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
        x0 = cx - s * (right - left) / 2.0;
        x1 = cx + s * (right - left) / 2.0;
        y0 = cy - s * (bottom - top) / 2.0;
        y1 = cy + s * (bottom - top) / 2.0;
    }
    let fx = |x: f64| left + (x - x0) / (x1 - x0) * (right - left);
    let fy = |y: f64| bottom - (y - y0) / (y1 - y0) * (bottom - top);
    for t in nice_ticks(x0, x1) {
        c.line(fx(t), top, fx(t), bottom, GRID);
        let s = fmt_tick(t);
        c.text(fx(t) as i64 - (s.len() as i64 * 3), bottom as i64 + 6, &s, FG, 1);
    }
    for t in nice_ticks(y0, y1) {
        c.line(left, fy(t), right, fy(t), GRID);
        let s = fmt_tick(t);
        c.text(left as i64 - 6 - s.len() as i64 * 6, fy(t) as i64 - 3, &s, FG, 1);
    }
    c.rect(left, top, right, bottom, FG);
    c.text(ax as i64 + 70, ay as i64 + 8, title, FG, 2);
    c.text(((left + right) / 2.0) as i64 - x_label.len() as i64 * 3, bottom as i64 + 22, x_label, FG, 1);
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        if s.dots {
            for p in &s.points {
                if p.0.is_finite() && p.1.is_finite() {
                    c.dot(fx(p.0), fy(p.1), 1, color);
                }
            }
        } else {
            for w in s.points.windows(2) {
                if w.iter().all(|p| p.0.is_finite() && p.1.is_finite()) {
                    c.line(fx(w[0].0), fy(w[0].1), fx(w[1].0), fy(w[1].1), color);
                }
            }
        }
        let ly = top as i64 + 8 + i as i64 * 12;
        c.line(right - 150.0, ly as f64 + 3.0, right - 135.0, ly as f64 + 3.0, color);
        c.text(right as i64 - 130, ly, s.name, color, 1);
    }
}

/// Fusion plot: trajectory (estimates vs truth) on the left, NIS over time on the right.
pub fn fusion_plot(
    path: &Path,
    data: &[(crate::fusion::Measurement, [f64; 4])],
    ukf: &crate::fusion::eval::FilterReport,
    ekf: &crate::fusion::eval::FilterReport,
) -> Result<()> {
    use crate::fusion::Measurement;
    let mut c = Canvas::new(1400, 600);
    let truth: Vec<(f64, f64)> = data.iter().map(|(_, g)| (g[0], g[1])).collect();
    let est = |r: &crate::fusion::eval::FilterReport| r.estimates.iter().map(|e| (e.px_m, e.py_m)).collect::<Vec<_>>();
    chart(
        &mut c,
        (0, 0, 700, 600),
        "POSITION (M)",
        "X (M)",
        &[
            Series { name: "TRUTH", points: truth, dots: false },
            Series { name: "UKF", points: est(ukf), dots: false },
            Series { name: "EKF", points: est(ekf), dots: false },
        ],
        true,
    );
    let t0 = data.first().map(|(m, _)| m.t_secs()).unwrap_or(0.0);
    let nis = |kind: bool| {
        data.iter()
            .zip(&ukf.estimates)
            .filter(|((m, _), _)| matches!(m, Measurement::Lidar { .. }) == kind)
            .filter_map(|((m, _), e)| e.nis.map(|n| (m.t_secs() - t0, n)))
            .collect::<Vec<_>>()
    };
    let span = data.last().map(|(m, _)| m.t_secs() - t0).unwrap_or(1.0);
    chart(
        &mut c,
        (700, 0, 700, 600),
        "UKF NIS",
        "TIME (S)",
        &[
            Series { name: "LIDAR NIS", points: nis(true), dots: true },
            Series { name: "RADAR NIS", points: nis(false), dots: true },
            Series { name: "LIDAR 95%", points: vec![(0.0, 5.991), (span, 5.991)], dots: false },
            Series { name: "RADAR 95%", points: vec![(0.0, 7.815), (span, 7.815)], dots: false },
        ],
        false,
    );
    c.save(path)
}

/// Loss curve of a trajectory training run: training loss and validation ADE per epoch.
pub fn loss_plot(path: &Path, report: &crate::trajectory::tcn::TrainReport) -> Result<()> {
    let mut c = Canvas::new(900, 500);
    let train: Vec<(f64, f64)> = report.epochs.iter().map(|e| (e.epoch as f64, e.train_loss)).collect();
    let val: Vec<(f64, f64)> = report.epochs.iter().map(|e| (e.epoch as f64, e.val_ade_m)).collect();
    chart(
        &mut c,
        (0, 0, 900, 500),
        "TRAINING",
        "EPOCH",
        &[
            Series { name: "TRAIN LOSS", points: train, dots: false },
            Series { name: "VAL ADE (M)", points: val, dots: false },
        ],
        false,
    );
    c.save(path)
}

/// A bird's-eye view of a KITTI frame: the points, the camera's field of view (dotted), the
/// labels, and each detection with its class, score and verdict (TP, FP; nothing for one
/// not counted).
pub fn kitti_bev(path: &Path, f: &JudgedFrame) -> Result<()> {
    let (points, labels, dets, verdicts, calib) = (&f.points, &f.labels, &f.detections, &f.verdicts, &f.calib);
    // 0..60 m ahead, ±30 m to the side, 10 px per metre; x forward is up.
    let (w, h, s) = (600usize, 600usize, 10.0);
    let mut c = Canvas::new(w, h);
    let to_px = |x: f64, y: f64| ((w as f64 / 2.0) - y * s, h as f64 - x * s);
    for m in (0..=60).step_by(10) {
        let (_, py) = to_px(f64::from(m), 0.0);
        c.line(0.0, py, w as f64, py, GRID);
        c.text(4, py as i64 - 10, &format!("{m} M"), FG, 1);
    }
    // The edges of the camera's view, found by walking out along each bearing on the ground.
    for r in (20..600).step_by(4) {
        let r = f64::from(r) / 10.0;
        let inside = |deg: i32| {
            let a = f64::from(deg).to_radians() / 4.0;
            calib.in_fov(nalgebra::Vector3::new(r * a.cos(), r * a.sin(), -1.7)).is_some()
        };
        for deg in -360..360 {
            if inside(deg) != inside(deg + 1) {
                let a = f64::from(deg).to_radians() / 4.0;
                let (px, py) = to_px(r * a.cos(), r * a.sin());
                c.set(px as i64, py as i64, FG);
            }
        }
    }
    for p in points {
        let (px, py) = to_px(f64::from(p[0]), f64::from(p[1]));
        let g = (60.0 + 160.0 * f64::from(p[3]).clamp(0.0, 1.0)) as u8;
        c.set(px as i64, py as i64, [g, g, g]);
    }
    let draw = |c: &mut Canvas, b: &boxfit::FittedBox, col: [u8; 3]| {
        let (sn, cs) = b.yaw_rad.sin_cos();
        let corners: Vec<(f64, f64)> = [(1.0, 1.0), (-1.0, 1.0), (-1.0, -1.0), (1.0, -1.0)]
            .iter()
            .map(|(du, dv)| {
                let (u, v) = (du * b.length_m / 2.0, dv * b.width_m / 2.0);
                to_px(b.x_m + cs * u - sn * v, b.y_m + sn * u + cs * v)
            })
            .collect();
        for i in 0..4 {
            let (p, q) = (corners[i], corners[(i + 1) % 4]);
            c.line(p.0, p.1, q.0, q.1, col);
        }
    };
    for l in labels {
        if let Some(b) = &l.bbox {
            draw(&mut c, b, COLORS[3]);
        }
    }
    for (d, v) in dets.iter().zip(verdicts) {
        draw(&mut c, &d.bbox, COLORS[d.class.min(2)]);
        let (px, py) = to_px(d.bbox.x_m, d.bbox.y_m);
        let verdict = match v {
            kitti::Verdict::Right => " TP",
            kitti::Verdict::Wrong => " FP",
            _ => "",
        };
        c.text(
            px as i64 + 6,
            py as i64,
            &format!("{} {:.2}{verdict}", CLASSES[d.class].to_uppercase(), d.score),
            COLORS[d.class.min(2)],
            1,
        );
    }
    c.text(8, 8, "GREEN: LABELS  BLUE: VEHICLE  YELLOW: PEDESTRIAN  RED: CYCLIST", FG, 1);
    c.text(8, 22, "DOTS: CAMERA VIEW  TP/FP: COUNTED RIGHT/WRONG", FG, 1);
    c.save(path)
}
