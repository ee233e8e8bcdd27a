//! `waypoint bench`: the load generator of `waypoint-bench`, its flags and its table.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
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
    /// Call the model in this process (loaded from the repository on its configured device,
    /// one instance, one request at a time) instead of a server: the model's own throughput.
    #[arg(long)]
    pub in_process: bool,
    /// The model repository for `--in-process` (default: the one `serve` uses).
    #[arg(long, env = "WAYPOINT_MODEL_REPOSITORY")]
    pub model_repository: Option<PathBuf>,
}

/// `--in-process`: the model's latest version loaded here, timed on each batch size.
fn in_process(args: &BenchArgs) -> Result<Vec<serde_json::Value>> {
    use waypoint_models::{Tensor, TensorData};
    use waypoint_server::serving::repository::Repository;
    let root = args.model_repository.clone().unwrap_or_else(waypoint_server::config::default_model_repository);
    let repo = Repository::new(&root);
    let config = repo.config(&args.model)?;
    let version = *repo.versions_to_serve(&args.model, &config.version_policy)?.last().context("no version to load")?;
    let dir = repo.version_dir(&args.model, version)?;
    let (mut model, device) = waypoint_server::serving::registry::instantiate(&args.model, &config, &dir)
        .with_context(|| args.model.clone())?;
    let spec = config.inputs.iter().find(|s| !s.optional).context("no required input")?;
    let mut rows = Vec::new();
    for &batch in &args.batch {
        let shape: Vec<usize> =
            std::iter::once(batch).chain(spec.dims[1..].iter().map(|d| (*d).max(1) as usize)).collect();
        let n = shape.iter().product::<usize>();
        let input = [Tensor::new(&spec.name, shape, TensorData::F32((0..n).map(|i| (i % 7) as f32 * 0.25).collect()))?];
        model.infer(&input)?; // warm-up
        let mut latencies = Vec::new();
        let started = Instant::now();
        while started.elapsed().as_secs_f64() < args.duration_secs || latencies.is_empty() {
            let t = Instant::now();
            model.infer(&input)?;
            latencies.push(t.elapsed());
        }
        let secs = started.elapsed().as_secs_f64();
        latencies.sort();
        let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e6;
        rows.push(json!({
            "transport": "in-process", "device": device, "batch": batch, "concurrency": 1,
            "requests_per_sec": latencies.len() as f64 / secs,
            "predictions_per_sec": (latencies.len() * batch) as f64 / secs,
            "p50_us": pct(0.5), "p90_us": pct(0.9), "p99_us": pct(0.99), "errors": 0,
        }));
    }
    Ok(rows)
}

pub fn bench(args: BenchArgs) -> Result<()> {
    if args.in_process {
        let rows = in_process(&args)?;
        return print_rows(&args, &rows);
    }
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
    print_rows(&args, &rows)
}

fn print_rows(args: &BenchArgs, rows: &[serde_json::Value]) -> Result<()> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json!({"model": args.model, "results": rows}))?);
        return Ok(());
    }
    println!(
        "{:<10} {:>5} {:>4} {:>10} {:>12} {:>9} {:>9} {:>9} {:>7} {:>10} {:>10}",
        "transport", "batch", "conc", "req/s", "pred/s", "p50 µs", "p90 µs", "p99 µs", "errors", "srv µs", "compute µs"
    );
    for r in rows {
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
