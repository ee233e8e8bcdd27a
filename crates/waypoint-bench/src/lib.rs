//! `waypoint-bench`: the load generator behind `waypoint bench`, a closed-loop client of a
//! running server. Each of `concurrency` workers sends a request, waits for the answer and sends
//! the next, for a fixed time; latencies are recorded per request and reported as percentiles
//! with the throughput, beside the server's own mean time per request from its `/metrics`.

pub mod fanout;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use waypoint_protocol::{encode, Bulk, ClientMessage, Codec, InferRequest, RequestId, ServerMessage, WireTensor};

/// How requests reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    OipJson,
    OipBinary,
    WsMsgpack,
}

/// What to measure: every combination of transport, rows per request and concurrency, each for
/// `duration_secs`.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Server base URL.
    pub url: String,
    /// Model to call (its first input is filled with deterministic values).
    pub model: String,
    pub transports: Vec<Transport>,
    pub concurrency: Vec<usize>,
    pub batch: Vec<usize>,
    pub duration_secs: f64,
}

/// Why a measurement could not be made (failed requests are counted, not errors).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("cannot reach the server: {0}")]
    Unreachable(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("websocket: {0}")]
    WebSocket(String),
    #[error("{0}")]
    Internal(String),
}

fn ws_err(e: impl std::fmt::Display) -> BenchError {
    BenchError::WebSocket(e.to_string())
}

fn internal(e: impl std::fmt::Display) -> BenchError {
    BenchError::Internal(e.to_string())
}

struct Input {
    name: String,
    dims: Vec<i64>,
}

fn shape_for(dims: &[i64], batch: usize) -> Vec<usize> {
    dims.iter()
        .enumerate()
        .map(|(i, d)| {
            if *d < 0 {
                if i == 0 {
                    batch
                } else {
                    1
                }
            } else {
                *d as usize
            }
        })
        .collect()
}

fn values(n: usize) -> Vec<f32> {
    (0..n).map(|i| (i % 7) as f32 * 0.25).collect()
}

struct Sample {
    latencies: Vec<Duration>,
    errors: u64,
}

async fn oip_worker(
    url: String,
    body: Vec<u8>,
    header_len: Option<usize>,
    until: Instant,
) -> Result<Sample, BenchError> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(1).build().map_err(internal)?;
    let mut s = Sample { latencies: Vec::new(), errors: 0 };
    while Instant::now() < until {
        let t = Instant::now();
        let mut req = client.post(&url).body(body.clone());
        if let Some(n) = header_len {
            req = req.header("Inference-Header-Content-Length", n.to_string());
        }
        let ok = match req.send().await {
            Ok(r) => {
                let good = r.status().is_success();
                let _ = r.bytes().await;
                good
            }
            Err(_) => false,
        };
        if ok {
            s.latencies.push(t.elapsed());
        } else {
            s.errors += 1;
        }
    }
    Ok(s)
}

async fn ws_worker(url: String, request: InferRequest, until: Instant) -> Result<Sample, BenchError> {
    let ws_url = url.replacen("http", "ws", 1) + "/ws";
    let mut req = ws_url.into_client_request().map_err(ws_err)?;
    req.headers_mut().insert("Sec-WebSocket-Protocol", waypoint_protocol::SUBPROTOCOL_MSGPACK.parse().map_err(ws_err)?);
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.map_err(|e| ws_err(format!("connect: {e}")))?;
    let mut s = Sample { latencies: Vec::new(), errors: 0 };
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        let msg = ClientMessage::Infer { id: RequestId::Num(n), request: request.clone() };
        let bytes = encode(Codec::MsgPack, &msg).map_err(internal)?;
        let t = Instant::now();
        ws.send(Message::Binary(bytes.into())).await.map_err(ws_err)?;
        loop {
            let Some(m) = ws.next().await else { return Err(ws_err("closed")) };
            let Message::Binary(b) = m.map_err(ws_err)? else { continue };
            match rmp_serde_decode(&b) {
                Some(ServerMessage::InferResult { id: RequestId::Num(i), .. }) if i == n => {
                    s.latencies.push(t.elapsed());
                    break;
                }
                Some(ServerMessage::Error { id: Some(RequestId::Num(i)), .. }) if i == n => {
                    s.errors += 1;
                    break;
                }
                _ => {}
            }
        }
    }
    Ok(s)
}

fn rmp_serde_decode(b: &[u8]) -> Option<ServerMessage> {
    waypoint_protocol::codec::decode_server(Codec::MsgPack, b).ok()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

async fn server_times(client: &reqwest::Client, url: &str, model: &str) -> Option<(f64, f64, f64)> {
    let text = client.get(format!("{url}/metrics")).send().await.ok()?.text().await.ok()?;
    let get = |metric: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(metric) && l.contains(&format!("model=\"{model}\"")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    Some((
        get("waypoint_inference_request_duration_seconds_sum"),
        get("waypoint_inference_request_duration_seconds_count"),
        get("waypoint_inference_compute_duration_seconds_sum"),
    ))
}

/// Runs every measurement of `args` in turn; one JSON row each (transport, batch, concurrency,
/// requests and predictions per second, p50/p90/p99 latency in µs, errors, and the server's
/// mean request and compute time in µs).
pub async fn run(args: &BenchConfig) -> Result<Vec<Value>, BenchError> {
    let client = reqwest::Client::new();
    let meta: Value = client
        .get(format!("{}/v2/models/{}", args.url, args.model))
        .send()
        .await
        .map_err(|e| BenchError::Unreachable(e.to_string()))?
        .json()
        .await
        .map_err(|e| BenchError::Unreachable(e.to_string()))?;
    let input = meta["inputs"].get(0).ok_or_else(|| BenchError::Unsupported("model has no inputs".into()))?;
    let input = Input {
        name: input["name"].as_str().unwrap_or_default().to_string(),
        dims: input["shape"].as_array().map(|a| a.iter().filter_map(Value::as_i64).collect()).unwrap_or_default(),
    };
    if input.dims.is_empty() || meta["inputs"][0]["datatype"] != "FP32" {
        return Err(BenchError::Unsupported("bench drives models whose first input is FP32".into()));
    }
    let mut rows = Vec::new();
    for &transport in &args.transports {
        for &batch in &args.batch {
            for &concurrency in &args.concurrency {
                let shape = shape_for(&input.dims, batch);
                let data = values(shape.iter().product());
                let url = format!("{}/v2/models/{}/infer", args.url, args.model);
                let before = server_times(&client, &args.url, &args.model).await;
                let until = Instant::now() + Duration::from_secs_f64(args.duration_secs);
                let started = Instant::now();
                let mut tasks = Vec::new();
                for _ in 0..concurrency {
                    match transport {
                        Transport::OipJson => {
                            let body = serde_json::to_vec(
                                &json!({"inputs": [{"name": input.name, "shape": shape, "datatype": "FP32", "data": data}]}),
                            )
                            .map_err(internal)?;
                            tasks.push(tokio::spawn(oip_worker(url.clone(), body, None, until)));
                        }
                        Transport::OipBinary => {
                            let header = json!({
                                "inputs": [{"name": input.name, "shape": shape, "datatype": "FP32", "parameters": {"binary_data_size": data.len() * 4}}],
                                "parameters": {"binary_data_output": true},
                            });
                            let mut body = serde_json::to_vec(&header).map_err(internal)?;
                            let n = body.len();
                            body.extend(data.iter().flat_map(|v| v.to_le_bytes()));
                            tasks.push(tokio::spawn(oip_worker(url.clone(), body, Some(n), until)));
                        }
                        Transport::WsMsgpack => {
                            let request = InferRequest {
                                model: args.model.clone(),
                                version: None,
                                inputs: vec![WireTensor {
                                    name: input.name.clone(),
                                    datatype: "FP32".into(),
                                    shape: shape.iter().map(|d| *d as u64).collect(),
                                    data: Bulk::encode_f32(&data, waypoint_protocol::Compression::None),
                                }],
                                outputs: None,
                            };
                            tasks.push(tokio::spawn(ws_worker(args.url.clone(), request, until)));
                        }
                    }
                }
                let mut latencies = Vec::new();
                let mut errors = 0;
                for t in tasks {
                    let s = t.await.map_err(internal)??;
                    latencies.extend(s.latencies);
                    errors += s.errors;
                }
                let elapsed = started.elapsed().as_secs_f64();
                latencies.sort();
                let after = server_times(&client, &args.url, &args.model).await;
                let (server_mean_us, compute_mean_us) = match (before, after) {
                    (Some(b), Some(a)) if a.1 > b.1 => {
                        ((a.0 - b.0) / (a.1 - b.1) * 1e6, (a.2 - b.2) / (a.1 - b.1) * 1e6)
                    }
                    _ => (f64::NAN, f64::NAN),
                };
                let rps = latencies.len() as f64 / elapsed;
                rows.push(json!({
                    "transport": format!("{transport:?}"),
                    "batch": batch,
                    "concurrency": concurrency,
                    "requests_per_sec": rps,
                    "predictions_per_sec": rps * batch as f64,
                    "p50_us": percentile(&latencies, 0.50),
                    "p90_us": percentile(&latencies, 0.90),
                    "p99_us": percentile(&latencies, 0.99),
                    "errors": errors,
                    "server_mean_us": server_mean_us,
                    "server_compute_mean_us": compute_mean_us,
                }));
            }
        }
    }
    Ok(rows)
}
