//! Counters and gauges, exposed in the Prometheus text format at `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

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
    stream_bytes: Mutex<BTreeMap<(StreamName, String), u64>>,
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

impl Metrics {
    /// Counts bytes encoded for a stream (once per distinct encoding per item).
    pub fn add_stream_bytes(&self, stream: StreamName, codec: Codec, options: StreamOptions, n: usize) {
        let mut m = self.stream_bytes.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry((stream, encoding_label(codec, options))).or_default() += n as u64;
    }

    /// The Prometheus text exposition; `queued_bytes` is sampled by the caller.
    pub fn render(&self, queued_bytes: usize) -> String {
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
        out
    }
}
