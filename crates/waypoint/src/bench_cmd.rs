//! `waypoint bench`: the load generator of `waypoint-bench`, its flags and its table.

use anyhow::Result;
use clap::{Args, ValueEnum};
use serde_json::json;
use waypoint_bench::{BenchConfig, Transport};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TransportArg {
    OipJson,
    OipBinary,
    WsMsgpack,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Model to call (its first input is filled with deterministic values).
    #[arg(long, default_value = "trajectory_cv")]
    pub model: String,
    /// Transports to measure.
    #[arg(long, value_delimiter = ',', default_value = "oip-json,oip-binary,ws-msgpack")]
    pub transport: Vec<TransportArg>,
    /// Concurrency levels (closed-loop workers).
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    pub concurrency: Vec<usize>,
    /// Rows per request.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    pub batch: Vec<usize>,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5.0)]
    pub duration_secs: f64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn bench(args: BenchArgs) -> Result<()> {
    let config = BenchConfig {
        url: args.url.clone(),
        model: args.model.clone(),
        transports: args
            .transport
            .iter()
            .map(|t| match t {
                TransportArg::OipJson => Transport::OipJson,
                TransportArg::OipBinary => Transport::OipBinary,
                TransportArg::WsMsgpack => Transport::WsMsgpack,
            })
            .collect(),
        concurrency: args.concurrency.clone(),
        batch: args.batch.clone(),
        duration_secs: args.duration_secs,
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let rows = rt.block_on(waypoint_bench::run(&config))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json!({"model": args.model, "results": rows}))?);
        return Ok(());
    }
    println!(
        "{:<10} {:>5} {:>4} {:>10} {:>12} {:>9} {:>9} {:>9} {:>7} {:>10} {:>10}",
        "transport", "batch", "conc", "req/s", "pred/s", "p50 µs", "p90 µs", "p99 µs", "errors", "srv µs", "compute µs"
    );
    for r in &rows {
        let f = |key: &str| r[key].as_f64().unwrap_or(f64::NAN);
        println!(
            "{:<10} {:>5} {:>4} {:>10.0} {:>12.0} {:>9.0} {:>9.0} {:>9.0} {:>7} {:>10.1} {:>10.1}",
            r["transport"].as_str().unwrap_or(""),
            r["batch"],
            r["concurrency"],
            r["requests_per_sec"].as_f64().unwrap_or(0.0),
            r["predictions_per_sec"].as_f64().unwrap_or(0.0),
            f("p50_us"),
            f("p90_us"),
            f("p99_us"),
            r["errors"],
            f("server_mean_us"),
            f("server_compute_mean_us"),
        );
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct FanoutArgs {
    /// Replicas' base URLs; the clients are spread over them evenly.
    #[arg(long, value_delimiter = ',', required = true)]
    pub urls: Vec<String>,
    /// The replica that runs the scene (the reference subscriber connects there).
    #[arg(long)]
    pub reference: String,
    /// Subscribers in all.
    #[arg(long, default_value_t = 1000)]
    pub clients: usize,
    /// Streams every subscriber takes (MessagePack).
    #[arg(long, value_delimiter = ',', default_value = "scene,tracks,predictions")]
    pub streams: Vec<String>,
    /// Seconds measured (after 3 s for the connections to open).
    #[arg(long, default_value_t = 20.0)]
    pub duration_secs: f64,
}

pub fn fanout(args: FanoutArgs) -> Result<()> {
    let streams = args
        .streams
        .iter()
        .map(|s| {
            waypoint_protocol::StreamName::ALL
                .into_iter()
                .find(|n| n.as_str() == s)
                .ok_or_else(|| anyhow::anyhow!("unknown stream {s:?}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let config = waypoint_bench::fanout::FanoutConfig {
        urls: args.urls,
        reference: args.reference,
        clients: args.clients,
        streams,
        duration_secs: args.duration_secs,
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = rt.block_on(waypoint_bench::fanout::run(&config))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
