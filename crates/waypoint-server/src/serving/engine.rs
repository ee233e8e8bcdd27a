//! The inference engine of one loaded model version: a bounded queue shared by worker threads
//! (one model instance each) that form dynamic batches.
//!
//! A worker takes the first waiting request, then keeps collecting requests until the batch
//! holds `max_batch_size` rows or `max_queue_delay_us` has passed since it took the first one
//! (it waits only while more requests are in flight than it holds, so a lone request is not
//! delayed);
//! it concatenates the inputs along dimension 0, runs the model once and splits the outputs back
//! per request. The queue is bounded: when it is full, [`VersionEngine::submit`] refuses at once.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};
use tokio::sync::oneshot;
use waypoint_models::{Model, ModelError, Tensor};

use crate::metrics::VersionMetrics;

/// What a finished request carries back.
#[derive(Debug)]
pub struct InferOutput {
    pub outputs: Vec<Tensor>,
    pub queue: Duration,
    pub compute: Duration,
    pub batch_rows: usize,
}

/// Why a request did not run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the model's queue is full")]
    QueueFull,
    #[error("the request timed out after {0:?}")]
    Timeout(Duration),
    #[error("the model version is unloading")]
    Stopped,
    #[error(transparent)]
    Model(#[from] ModelError),
}

struct Job {
    inputs: Vec<Tensor>,
    rows: usize,
    enqueued: Instant,
    reply: oneshot::Sender<Result<InferOutput, ModelError>>,
}

/// Batching settings of an engine.
#[derive(Debug, Clone, Copy)]
pub struct BatchSettings {
    pub max_batch_size: usize,
    pub max_queue_delay: Duration,
    pub queue_capacity: usize,
    pub instances: usize,
    pub timeout: Duration,
}

/// The workers and queue of one model version.
#[derive(Debug)]
pub struct VersionEngine {
    tx: Sender<Job>,
    settings: BatchSettings,
    metrics: Arc<VersionMetrics>,
    _workers: Vec<JoinHandle<()>>,
}

impl VersionEngine {
    /// Starts `settings.instances` workers, each owning one model from `instances`.
    pub fn start(
        name: &str,
        instances: Vec<Box<dyn Model>>,
        settings: BatchSettings,
        metrics: Arc<VersionMetrics>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = bounded::<Job>(settings.queue_capacity.max(1));
        let mut workers = Vec::new();
        for (i, model) in instances.into_iter().enumerate() {
            let rx = rx.clone();
            let m = metrics.clone();
            workers.push(
                std::thread::Builder::new()
                    .name(format!("wp-{name}-{i}"))
                    .spawn(move || worker(model, &rx, settings, &m))?,
            );
        }
        Ok(Self { tx, settings, metrics, _workers: workers })
    }

    pub fn settings(&self) -> BatchSettings {
        self.settings
    }

    /// Requests waiting in the queue.
    pub fn queue_depth(&self) -> usize {
        self.tx.len()
    }

    /// Queues a request (inputs already validated, all with `rows` rows) and waits for it.
    pub async fn infer(&self, inputs: Vec<Tensor>, rows: usize) -> Result<InferOutput, EngineError> {
        let (reply, rx) = oneshot::channel();
        let job = Job { inputs, rows, enqueued: Instant::now(), reply };
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(EngineError::QueueFull),
            Err(TrySendError::Disconnected(_)) => return Err(EngineError::Stopped),
        }
        self.metrics.queue_depth.store(self.tx.len() as i64, Ordering::Relaxed);
        match tokio::time::timeout(self.settings.timeout, rx).await {
            Ok(Ok(result)) => Ok(result?),
            Ok(Err(_)) => Err(EngineError::Stopped),
            Err(_) => Err(EngineError::Timeout(self.settings.timeout)),
        }
    }
}

fn worker(mut model: Box<dyn Model>, rx: &Receiver<Job>, s: BatchSettings, metrics: &VersionMetrics) {
    let mut carried: Option<Job> = None;
    loop {
        let first = match carried.take() {
            Some(j) => j,
            None => match rx.recv() {
                Ok(j) => j,
                Err(_) => return,
            },
        };
        let mut rows = first.rows;
        let mut jobs = vec![first];
        if s.max_batch_size > 0 {
            let deadline = Instant::now() + s.max_queue_delay;
            while rows < s.max_batch_size {
                // Wait for company only when more requests are in flight than this batch holds
                // (they are being validated or queued right now); a lone request runs at once.
                let others_coming = metrics.in_flight.load(Ordering::Relaxed) > jobs.len() as i64;
                let next = match rx.try_recv() {
                    Ok(j) => Ok(j),
                    Err(_) if others_coming && !s.max_queue_delay.is_zero() => rx.recv_deadline(deadline),
                    Err(_) => Err(RecvTimeoutError::Timeout),
                };
                match next {
                    Ok(j) if rows + j.rows <= s.max_batch_size => {
                        rows += j.rows;
                        jobs.push(j);
                    }
                    Ok(j) => {
                        carried = Some(j);
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        metrics.queue_depth.store(rx.len() as i64, Ordering::Relaxed);
        run_batch(model.as_mut(), jobs, rows, metrics);
    }
}

fn run_batch(model: &mut dyn Model, jobs: Vec<Job>, rows: usize, metrics: &VersionMetrics) {
    let started = Instant::now();
    // Drop requests whose caller has gone (timed out) before spending compute on them.
    let jobs: Vec<Job> = jobs.into_iter().filter(|j| !j.reply.is_closed()).collect();
    if jobs.is_empty() {
        return;
    }
    let result = if jobs.len() == 1 {
        model.infer(&jobs[0].inputs).map(|o| vec![o])
    } else {
        let n_inputs = jobs[0].inputs.len();
        (0..n_inputs)
            .map(|i| Tensor::concat(&jobs.iter().map(|j| &j.inputs[i]).collect::<Vec<_>>()))
            .collect::<Result<Vec<_>, _>>()
            .and_then(|batched| model.infer(&batched))
            .and_then(|outs| {
                let sizes: Vec<usize> = jobs.iter().map(|j| j.rows).collect();
                let split: Vec<Vec<Tensor>> = outs.iter().map(|o| o.split(&sizes)).collect::<Result<_, _>>()?;
                Ok((0..jobs.len()).map(|k| split.iter().map(|per_out| per_out[k].clone()).collect()).collect())
            })
    };
    let compute = started.elapsed();
    let actual_rows: usize = jobs.iter().map(|j| j.rows).sum();
    metrics.observe_batch(actual_rows.min(rows), compute);
    match result {
        Ok(per_job) => {
            for (job, outputs) in jobs.into_iter().zip(per_job) {
                let queue = started.saturating_duration_since(job.enqueued);
                let _ = job.reply.send(Ok(InferOutput { outputs, queue, compute, batch_rows: actual_rows }));
            }
        }
        Err(e) => {
            let msg = e.to_string();
            let bad_input = matches!(e, ModelError::BadInput(_));
            for job in jobs {
                let err = if bad_input { ModelError::BadInput(msg.clone()) } else { ModelError::Internal(msg.clone()) };
                let _ = job.reply.send(Err(err));
            }
        }
    }
}
