//! Counters and gauges, exposed in the Prometheus text format at `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use waypoint_protocol::{BulkFormat, Codec, Compression, StreamName, StreamOptions};

/// Process-wide metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    pub ws_connections: AtomicI64,
    pub ws_connections_total: AtomicU64,
    pub ws_dropped_frames: AtomicU64,
    pub ws_messages_in: AtomicU64,
    pub ws_errors: AtomicU64,
    pub sim_ticks: AtomicU64,
    pub sim_tick_nanos: AtomicU64,
    /// Sweeps the live AV stack processed, skipped (busy), and its busy time.
    pub perception_sweeps: AtomicU64,
    pub perception_skipped: AtomicU64,
    pub perception_busy_nanos: AtomicU64,
    /// Detections and confirmed tracks of the live stack's last sweep.
    pub live_detections: AtomicU64,
    pub live_tracks: AtomicU64,
    /// Each sensor's health alarm as the routed `sensor_health` version last said (in
    /// `Sensor::ALL` order).
    pub sensor_alarms: [std::sync::atomic::AtomicBool; 5],
    /// The stack's time per sweep, seconds, over the last [`SWEEP_TIMES_KEPT`] sweeps.
    perception_sweep_secs: Mutex<std::collections::VecDeque<f32>>,
    stream_bytes: Mutex<BTreeMap<(StreamName, String), u64>>,
    versions: Mutex<BTreeMap<(String, u64), Arc<VersionMetrics>>>,
    model_events: Mutex<BTreeMap<(String, &'static str, &'static str), u64>>,
    load_seconds: Histogram,
}

/// A Prometheus histogram with fixed bucket bounds.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

/// Sweeps whose stack time is kept for its quantiles (ten minutes of the scene at 10 Hz).
pub const SWEEP_TIMES_KEPT: usize = 6000;

/// A histogram's counts at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    bounds: &'static [f64],
    counts: Vec<u64>,
    count: u64,
}

impl HistogramSnapshot {
    /// An empty snapshot (no values) of a histogram with these bounds.
    pub fn empty(bounds: &'static [f64]) -> Self {
        Self { bounds, counts: vec![0; bounds.len()], count: 0 }
    }

    /// What was recorded after `earlier`, a snapshot of the same histogram.
    pub fn since(&self, earlier: &HistogramSnapshot) -> HistogramSnapshot {
        let counts = self.counts.iter().zip(&earlier.counts).map(|(a, b)| a.saturating_sub(*b)).collect();
        Self { bounds: self.bounds, counts, count: self.count.saturating_sub(earlier.count) }
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Records `n` values of `v` (for tests and replays).
    pub fn add(&mut self, v: f64, n: u64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.counts[i] += n;
        }
        self.count += n;
    }

    /// The `q` quantile, interpolated within its bucket (none without values).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * self.count as f64;
        let mut below = 0.0;
        let mut lower = 0.0;
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let c = *c as f64;
            if below + c >= rank && c > 0.0 {
                return Some(lower + (b - lower) * ((rank - below) / c));
            }
            below += c;
            lower = *b;
        }
        Some(lower)
    }
}

/// Bucket bounds for durations, seconds (25 µs to 10 s).
pub const DURATION_BUCKETS: &[f64] =
    &[25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1.0, 2.5, 10.0];
/// Bucket bounds for batch sizes, rows.
pub const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0];

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records a value; for durations pass seconds.
    pub fn observe(&self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_nanos.fetch_add((v * 1e9) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Sum of the recorded values (seconds for durations).
    pub fn sum_secs(&self) -> f64 {
        self.sum_nanos.load(Ordering::Relaxed) as f64 * 1e-9
    }

    /// Mean of the recorded values (none before the first).
    pub fn mean(&self) -> Option<f64> {
        let n = self.count();
        (n > 0).then(|| self.sum_nanos.load(Ordering::Relaxed) as f64 * 1e-9 / n as f64)
    }

    /// The `q` quantile estimated by linear interpolation within its bucket, as Prometheus'
    /// `histogram_quantile` does (none before the first value).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.snapshot().quantile(q)
    }

    /// The bucket counts now (to take quantiles of what happened between two snapshots).
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            bounds: self.bounds,
            counts: self.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect(),
            count: self.count(),
        }
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cumulative += c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum{{{labels}}} {:.9}", self.sum_nanos.load(Ordering::Relaxed) as f64 * 1e-9);
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// Counters and histograms of one model version.
#[derive(Debug)]
pub struct VersionMetrics {
    pub ok: AtomicU64,
    pub bad_request: AtomicU64,
    pub rejected: AtomicU64,
    pub failed: AtomicU64,
    /// Batches whose model panicked (answered with an `internal` error; the worker lives on).
    pub panics: AtomicU64,
    /// Requests answered from the response cache, and requests it did not hold.
    pub cache_hits: AtomicU64,
    pub cache_hits_redis: AtomicU64,
    pub cache_misses: AtomicU64,
    pub in_flight: AtomicI64,
    pub queue_depth: AtomicI64,
    pub rows: AtomicU64,
    pub batches: AtomicU64,
    pub last_inference_ms: AtomicU64,
    pub request: Histogram,
    pub queue: Histogram,
    pub compute: Histogram,
    pub batch: Histogram,
    /// Where the version runs (`cpu`, `cuda:0`), the `device` label of `waypoint_model_device`.
    device: std::sync::Mutex<String>,
}

impl VersionMetrics {
    pub fn set_device(&self, device: &str) {
        *self.device.lock().unwrap_or_else(|p| p.into_inner()) = device.to_string();
    }

    pub fn device(&self) -> String {
        self.device.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether the response cache was ever asked for this version.
    pub fn cache_used(&self) -> bool {
        [&self.cache_hits, &self.cache_hits_redis, &self.cache_misses].iter().any(|c| c.load(Ordering::Relaxed) > 0)
    }
}

impl Default for VersionMetrics {
    fn default() -> Self {
        Self {
            ok: AtomicU64::new(0),
            bad_request: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            panics: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            cache_hits_redis: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            in_flight: AtomicI64::new(0),
            queue_depth: AtomicI64::new(0),
            rows: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            last_inference_ms: AtomicU64::new(0),
            request: Histogram::new(DURATION_BUCKETS),
            queue: Histogram::new(DURATION_BUCKETS),
            compute: Histogram::new(DURATION_BUCKETS),
            batch: Histogram::new(BATCH_BUCKETS),
            device: std::sync::Mutex::new("cpu".into()),
        }
    }
}

impl VersionMetrics {
    /// Records one executed batch.
    pub fn observe_batch(&self, rows: usize, compute: Duration) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.rows.fetch_add(rows as u64, Ordering::Relaxed);
        self.batch.observe(rows as f64);
        self.compute.observe_duration(compute);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.last_inference_ms.store(now_ms, Ordering::Relaxed);
    }
}

fn encoding_label(codec: Codec, o: StreamOptions) -> String {
    let mut s = String::from(match codec {
        Codec::MsgPack => "msgpack",
        Codec::Json => "json",
    });
    if codec == Codec::MsgPack && o.compression == Compression::Deflate {
        s.push_str("+deflate");
    }
    if o.lidar_format == BulkFormat::I16 {
        s.push_str("+i16");
    }
    s
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new(DURATION_BUCKETS)
    }
}

impl Metrics {
    /// The metrics of a model version (created on first use, kept for the process lifetime).
    /// Every model version with metrics, in name and version order.
    pub fn all_versions(&self) -> Vec<((String, u64), Arc<VersionMetrics>)> {
        self.versions.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Records the live stack's time for one sweep.
    pub fn observe_sweep(&self, d: Duration) {
        self.perception_sweeps.fetch_add(1, Ordering::Relaxed);
        self.perception_busy_nanos.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
        let mut q = self.perception_sweep_secs.lock().unwrap_or_else(|p| p.into_inner());
        q.push_back(d.as_secs_f32());
        if q.len() > SWEEP_TIMES_KEPT {
            q.pop_front();
        }
    }

    /// Quantiles of the live stack's time per sweep over the kept sweeps, seconds.
    pub fn sweep_quantiles(&self, qs: &[f64]) -> Vec<Option<f64>> {
        let mut v: Vec<f32> =
            self.perception_sweep_secs.lock().unwrap_or_else(|p| p.into_inner()).iter().copied().collect();
        v.sort_by(f32::total_cmp);
        qs.iter()
            .map(|q| {
                (!v.is_empty()).then(|| f64::from(v[((q * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)]))
            })
            .collect()
    }

    /// Drops the series of a version that will not be served again (a retired learned version).
    pub fn remove_version(&self, model: &str, version: u64) {
        self.versions.lock().unwrap_or_else(|p| p.into_inner()).remove(&(model.to_string(), version));
    }

    pub fn version(&self, model: &str, version: u64) -> Arc<VersionMetrics> {
        let mut m = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        m.entry((model.to_string(), version)).or_default().clone()
    }

    /// Counts a load or unload (`event`) with its outcome, and a load's duration.
    pub fn model_event(&self, model: &str, event: &'static str, status: &'static str, took: Option<Duration>) {
        let mut m = self.model_events.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry((model.to_string(), event, status)).or_default() += 1;
        if let Some(d) = took {
            self.load_seconds.observe_duration(d);
        }
    }

    /// Counts bytes encoded for a stream (once per distinct encoding per item).
    pub fn add_stream_bytes(&self, stream: StreamName, codec: Codec, options: StreamOptions, n: usize) {
        let mut m = self.stream_bytes.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry((stream, encoding_label(codec, options))).or_default() += n as u64;
    }

    /// The Prometheus text exposition; `queued_bytes` is sampled by the caller.
    pub fn render(&self, queued_bytes: usize) -> String {
        let mut sweep_summary = String::new();
        let _ = writeln!(
            sweep_summary,
            "# HELP waypoint_perception_sweep_seconds The live AV stack's time per sweep (detection, tracking, fusion, submitting predictions), over the last {SWEEP_TIMES_KEPT} sweeps.\n# TYPE waypoint_perception_sweep_seconds summary"
        );
        for (q, v) in [0.5, 0.9, 0.99].iter().zip(self.sweep_quantiles(&[0.5, 0.9, 0.99])) {
            if let Some(v) = v {
                let _ = writeln!(sweep_summary, "waypoint_perception_sweep_seconds{{quantile=\"{q}\"}} {v:.6}");
            }
        }
        let mut out = String::new();
        let mut gauge = |name: &str, help: &str, kind: &str, v: String| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        gauge(
            "waypoint_ws_connections",
            "Open WebSocket connections.",
            "gauge",
            self.ws_connections.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            "waypoint_ws_connections_total",
            "WebSocket connections accepted.",
            "counter",
            self.ws_connections_total.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            "waypoint_ws_dropped_frames_total",
            "Stream frames dropped for slow clients.",
            "counter",
            self.ws_dropped_frames.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            "waypoint_ws_messages_received_total",
            "Messages received from clients.",
            "counter",
            self.ws_messages_in.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            "waypoint_ws_error_replies_total",
            "Error replies sent to clients.",
            "counter",
            self.ws_errors.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            "waypoint_ws_queued_bytes",
            "Stream bytes waiting in client send queues.",
            "gauge",
            queued_bytes.to_string(),
        );
        gauge(
            "waypoint_sim_ticks_total",
            "Simulator ticks run.",
            "counter",
            self.sim_ticks.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            "waypoint_sim_tick_seconds_total",
            "Time spent computing simulator ticks.",
            "counter",
            format!("{:.6}", self.sim_tick_nanos.load(Ordering::Relaxed) as f64 * 1e-9),
        );
        gauge(
            "waypoint_perception_sweeps_total",
            "Lidar sweeps the live AV stack processed (detection, tracking, fusion, prediction).",
            "counter",
            self.perception_sweeps.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            "waypoint_perception_skipped_total",
            "Lidar sweeps skipped because the live AV stack was still busy with an earlier one.",
            "counter",
            self.perception_skipped.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            "waypoint_perception_busy_seconds_total",
            "Wall-clock time the live AV stack spent on sweeps.",
            "counter",
            format!("{:.6}", self.perception_busy_nanos.load(Ordering::Relaxed) as f64 * 1e-9),
        );
        gauge(
            "waypoint_live_detections",
            "Objects the live stack detected in its last sweep.",
            "gauge",
            self.live_detections.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            "waypoint_live_tracks",
            "Confirmed tracks after the live stack's last sweep.",
            "gauge",
            self.live_tracks.load(Ordering::Relaxed).to_string(),
        );
        out.push_str(&sweep_summary);
        let _ = writeln!(
            out,
            "# HELP waypoint_sensor_alarm 1 while the routed sensor_health version raises the sensor's alarm.\n# TYPE waypoint_sensor_alarm gauge"
        );
        for (sensor, alarm) in waypoint_sim::fault::Sensor::ALL.iter().zip(&self.sensor_alarms) {
            let name =
                serde_json::to_value(sensor).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
            let _ =
                writeln!(out, "waypoint_sensor_alarm{{sensor=\"{name}\"}} {}", u8::from(alarm.load(Ordering::Relaxed)));
        }
        let _ = writeln!(out, "# HELP waypoint_stream_encoded_bytes_total Bytes encoded per stream and encoding.");
        let _ = writeln!(out, "# TYPE waypoint_stream_encoded_bytes_total counter");
        let m = self.stream_bytes.lock().unwrap_or_else(|p| p.into_inner());
        for ((stream, enc), v) in m.iter() {
            let _ = writeln!(
                out,
                "waypoint_stream_encoded_bytes_total{{stream=\"{}\",encoding=\"{enc}\"}} {v}",
                stream.as_str()
            );
        }
        drop(m);
        self.render_models(&mut out);
        out
    }

    fn render_models(&self, out: &mut String) {
        let versions = self.versions.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let header = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        header(out, "waypoint_inference_requests_total", "counter", "Inference requests by model, version and status.");
        for ((model, v), m) in &versions {
            for (status, c) in
                [("ok", &m.ok), ("bad_request", &m.bad_request), ("rejected", &m.rejected), ("failed", &m.failed)]
            {
                let _ = writeln!(
                    out,
                    "waypoint_inference_requests_total{{model=\"{model}\",version=\"{v}\",status=\"{status}\"}} {}",
                    c.load(Ordering::Relaxed)
                );
            }
        }
        header(
            out,
            "waypoint_model_device",
            "gauge",
            "1 for each loaded version, labelled with where it runs (cpu, or cuda:<id>).",
        );
        for ((model, v), m) in &versions {
            let _ =
                writeln!(out, "waypoint_model_device{{model=\"{model}\",version=\"{v}\",device=\"{}\"}} 1", m.device());
        }
        header(
            out,
            "waypoint_model_panics_total",
            "counter",
            "Batches whose model panicked; the worker answered them with an error and lived on.",
        );
        for ((model, v), m) in &versions {
            let _ = writeln!(
                out,
                "waypoint_model_panics_total{{model=\"{model}\",version=\"{v}\"}} {}",
                m.panics.load(Ordering::Relaxed)
            );
        }
        header(
            out,
            "waypoint_cache_hits_total",
            "counter",
            "Requests answered from the response cache (models with response_cache = true), by tier.",
        );
        for ((model, v), m) in versions.iter().filter(|(_, m)| m.cache_used()) {
            for (tier, c) in [("local", &m.cache_hits), ("redis", &m.cache_hits_redis)] {
                let _ = writeln!(
                    out,
                    "waypoint_cache_hits_total{{model=\"{model}\",version=\"{v}\",tier=\"{tier}\"}} {}",
                    c.load(Ordering::Relaxed)
                );
            }
        }
        header(
            out,
            "waypoint_cache_misses_total",
            "counter",
            "Cached models' requests the response cache did not hold.",
        );
        for ((model, v), m) in versions.iter().filter(|(_, m)| m.cache_used()) {
            let _ = writeln!(
                out,
                "waypoint_cache_misses_total{{model=\"{model}\",version=\"{v}\"}} {}",
                m.cache_misses.load(Ordering::Relaxed)
            );
        }
        for (name, kind, help) in [
            ("waypoint_inference_in_flight", "gauge", "Requests being served."),
            ("waypoint_inference_queue_depth", "gauge", "Requests waiting in the model's queue."),
        ] {
            header(out, name, kind, help);
            for ((model, v), m) in &versions {
                let g = if name.ends_with("in_flight") { &m.in_flight } else { &m.queue_depth };
                let _ = writeln!(out, "{name}{{model=\"{model}\",version=\"{v}\"}} {}", g.load(Ordering::Relaxed));
            }
        }
        type Pick = fn(&VersionMetrics) -> &Histogram;
        let hists: [(&str, &str, Pick); 4] = [
            ("waypoint_inference_request_duration_seconds", "End-to-end request time inside the server.", |m| {
                &m.request
            }),
            ("waypoint_inference_queue_duration_seconds", "Time requests wait before their batch runs.", |m| &m.queue),
            ("waypoint_inference_compute_duration_seconds", "Model compute time per batch.", |m| &m.compute),
            ("waypoint_inference_batch_size", "Rows per executed batch.", |m| &m.batch),
        ];
        for (name, help, pick) in hists {
            header(out, name, "histogram", help);
            for ((model, v), m) in &versions {
                pick(m).render(out, name, &format!("model=\"{model}\",version=\"{v}\""));
            }
        }
        header(out, "waypoint_model_events_total", "counter", "Model loads and unloads by outcome.");
        let events = self.model_events.lock().unwrap_or_else(|p| p.into_inner());
        for ((model, event, status), c) in events.iter() {
            let _ = writeln!(
                out,
                "waypoint_model_events_total{{model=\"{model}\",event=\"{event}\",status=\"{status}\"}} {c}"
            );
        }
        header(out, "waypoint_model_load_duration_seconds", "histogram", "Time to load a model's versions.");
        self.load_seconds.render(out, "waypoint_model_load_duration_seconds", "");
    }
}
