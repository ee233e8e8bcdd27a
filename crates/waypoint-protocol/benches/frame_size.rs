//! Bytes on the wire per stream for each encoding, averaged over 30 s of the default scene,
//! plus the time to encode a lidar sweep each way. Run: `cargo bench -p waypoint-protocol --bench frame_size`.

use std::collections::BTreeMap;
use std::time::Instant;

use waypoint_protocol::convert::{stream_items, SceneStatus};
use waypoint_protocol::{encode, BulkFormat, Codec, Compression, StreamOptions};
use waypoint_sim::{Scene, SceneConfig};

fn main() {
    let mut scene = Scene::new(SceneConfig::default()).expect("default scene");
    let status = SceneStatus { running: true, speed: 1.0, seed: 42, sensors_enabled: [true; 5] };
    let variants = [
        ("json", Codec::Json, StreamOptions::default()),
        ("msgpack", Codec::MsgPack, StreamOptions::default()),
        ("msgpack+deflate", Codec::MsgPack, StreamOptions { compression: Compression::Deflate, ..Default::default() }),
        ("msgpack+i16cm", Codec::MsgPack, StreamOptions { lidar_format: BulkFormat::I16, ..Default::default() }),
        (
            "msgpack+i16cm+deflate",
            Codec::MsgPack,
            StreamOptions { compression: Compression::Deflate, lidar_format: BulkFormat::I16 },
        ),
    ];
    let ticks = 300;
    let secs = ticks as f64 * scene.config().tick_secs;
    let mut bytes: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let mut encode_secs: BTreeMap<&str, f64> = BTreeMap::new();
    for _ in 0..ticks {
        let frame = scene.tick();
        for item in stream_items(&frame, &status) {
            for (name, codec, opts) in &variants {
                let t = Instant::now();
                let b = encode(*codec, &item.message(*codec, *opts)).expect("encode");
                if item.stream() == waypoint_protocol::StreamName::Lidar {
                    *encode_secs.entry(name).or_default() += t.elapsed().as_secs_f64();
                }
                *bytes.entry((item.stream().as_str(), name)).or_default() += b.len();
            }
        }
    }
    println!(
        "{:<8} {:>14} {:>14} {:>16} {:>14} {:>22}",
        "stream", "json", "msgpack", "msgpack+deflate", "msgpack+i16cm", "msgpack+i16cm+deflate"
    );
    for stream in ["scene", "truth", "lidar", "radar", "camera", "imu", "gps"] {
        print!("{stream:<8}");
        for (i, (name, _, _)) in variants.iter().enumerate() {
            let w = [14, 14, 16, 14, 22][i];
            let kbps = bytes.get(&(stream, *name)).copied().unwrap_or(0) as f64 / secs / 1000.0;
            print!(" {:>w$}", format!("{kbps:.1} kB/s"));
        }
        println!();
    }
    for (name, s) in encode_secs {
        println!("lidar encode {name}: {:.2} ms per sweep", s / ticks as f64 * 1e3);
    }
}
