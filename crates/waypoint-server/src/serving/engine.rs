//! The inference engine of one loaded model version: a bounded queue shared by worker threads
//! (one model instance each) that form dynamic batches.
//!
//! A worker takes the first waiting request, then keeps collecting requests until the batch
//! holds `max_batch_size` rows or `max_queue_delay_us` has passed since it took the first one
//! (it waits only while more requests are in flight than it holds, so a lone request is not
//! delayed);
//! it concatenates the inputs along dimension 0, runs the model once and splits the outputs back
//! per request. Only requests with the same input names and the same shapes past the batch
//! dimension share a batch (a request that differs starts the next one), so one client's
//! optional input or odd inner size never fails a neighbour's request. A model that panics
//! answers its batch with an `internal` error (logged and counted in
//! `waypoint_model_panics_total`) and its worker lives on. The queue is bounded: when it is
//! full, [`VersionEngine::infer`] refuses at once.

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
    /// In the model's declared order (validated), so requests with the same names agree on it.
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
                    Ok(j) if rows + j.rows <= s.max_batch_size && batchable(&jobs[0], &j) => {
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

/// The message a panic carried.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Whether two requests can share a batch: the same inputs, by name, with the same shapes past
/// the batch dimension.
fn batchable(a: &Job, b: &Job) -> bool {
    a.inputs.len() == b.inputs.len()
        && a.inputs.iter().zip(&b.inputs).all(|(x, y)| x.name == y.name && x.shape.get(1..) == y.shape.get(1..))
}

/// Runs the model on the batch's requests, concatenated when there are several, and splits the
/// outputs back.
fn compute(model: &mut dyn Model, jobs: &[Job]) -> Result<Vec<Vec<Tensor>>, ModelError> {
    if let [job] = jobs {
        return model.infer(&job.inputs).map(|o| vec![o]);
    }
    let batched = (0..jobs[0].inputs.len())
        .map(|i| Tensor::concat(&jobs.iter().map(|j| &j.inputs[i]).collect::<Vec<_>>()))
        .collect::<Result<Vec<_>, _>>()?;
    let outs = model.infer(&batched)?;
    let sizes: Vec<usize> = jobs.iter().map(|j| j.rows).collect();
    let split: Vec<Vec<Tensor>> = outs.iter().map(|o| o.split(&sizes)).collect::<Result<_, _>>()?;
    Ok((0..jobs.len()).map(|k| split.iter().map(|per_out| per_out[k].clone()).collect()).collect())
}

fn run_batch(model: &mut dyn Model, jobs: Vec<Job>, rows: usize, metrics: &VersionMetrics) {
    let started = Instant::now();
    // Drop requests whose caller has gone (timed out) before spending compute on them.
    let jobs: Vec<Job> = jobs.into_iter().filter(|j| !j.reply.is_closed()).collect();
    if jobs.is_empty() {
        return;
    }
    let result = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| compute(model, &jobs))) {
        Ok(r) => r,
        Err(panic) => {
            let what = panic_text(panic.as_ref());
            metrics.panics.fetch_add(1, Ordering::Relaxed);
            tracing::error!(panic = %what, requests = jobs.len(), "the model panicked; its batch is answered with an error");
            Err(ModelError::Internal(format!("the model failed: {what}")))
        }
    };
    let took = started.elapsed();
    let actual_rows: usize = jobs.iter().map(|j| j.rows).sum();
    metrics.observe_batch(actual_rows.min(rows), took);
    match result {
        Ok(per_job) => {
            for (job, outputs) in jobs.into_iter().zip(per_job) {
                let queue = started.saturating_duration_since(job.enqueued);
                let _ = job.reply.send(Ok(InferOutput { outputs, queue, compute: took, batch_rows: actual_rows }));
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

#[cfg(test)]
mod tests {
    use super::*;
    use waypoint_models::TensorData;

    /// Echoes input `a` as output `y`, adds input `b` when given; panics on a NaN in `a`;
    /// sleeps while `a` starts with 1000 (to let other requests queue up behind it).
    struct Probe;

    impl Model for Probe {
        fn infer(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
            let a = Tensor::named(inputs, "a")?;
            let mut v = a.as_f32()?.to_vec();
            assert!(v.iter().all(|x| !x.is_nan()), "NaN in the input");
            if v.first() == Some(&1000.0) {
                std::thread::sleep(Duration::from_millis(300));
            }
            if let Ok(b) = Tensor::named(inputs, "b") {
                let add = b.as_f32()?[0];
                v.iter_mut().for_each(|x| *x += add);
            }
            Ok(vec![Tensor::new("y", a.shape.clone(), TensorData::F32(v))?])
        }
    }

    fn engine() -> (VersionEngine, Arc<VersionMetrics>) {
        let settings = BatchSettings {
            max_batch_size: 64,
            max_queue_delay: Duration::from_millis(50),
            queue_capacity: 16,
            instances: 1,
            // Generous: the panic hook prints a symbolised backtrace (slow on a busy machine)
            // before the batch is answered.
            timeout: Duration::from_secs(300),
        };
        let metrics = Arc::new(VersionMetrics::default());
        (VersionEngine::start("probe", vec![Box::new(Probe)], settings, metrics.clone()).unwrap(), metrics)
    }

    fn t(name: &str, shape: Vec<usize>, v: Vec<f32>) -> Tensor {
        Tensor::new(name, shape, TensorData::F32(v)).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_model_answers_its_batch_with_an_error_and_the_worker_lives_on() {
        let (e, m) = engine();
        let bad = e.infer(vec![t("a", vec![1, 1], vec![f32::NAN])], 1).await;
        match bad {
            Err(EngineError::Model(ModelError::Internal(msg))) => assert!(msg.contains("NaN"), "{msg}"),
            other => panic!("expected an internal error, got {other:?}"),
        }
        assert_eq!(m.panics.load(Ordering::Relaxed), 1);
        let good = e.infer(vec![t("a", vec![1, 1], vec![2.0])], 1).await.expect("the worker still serves");
        assert_eq!(good.outputs[0].as_f32().unwrap(), &[2.0]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_with_other_inputs_or_inner_shapes_do_not_share_a_batch() {
        let (e, _) = engine();
        let e = Arc::new(e);
        // The first request holds the worker while the others queue up behind it.
        let slow = {
            let e = e.clone();
            tokio::spawn(async move { e.infer(vec![t("a", vec![1, 1], vec![1000.0])], 1).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Queued in this order: an optional input given; the same input left out; a request
        // that matches the previous one (these two share a batch); one with another inner size.
        let requests = vec![
            vec![t("a", vec![1, 1], vec![1.0]), t("b", vec![1], vec![10.0])],
            vec![t("a", vec![1, 1], vec![2.0])],
            vec![t("a", vec![2, 1], vec![5.0, 6.0])],
            vec![t("a", vec![1, 2], vec![3.0, 4.0])],
        ];
        let expected: [&[f32]; 4] = [&[11.0], &[2.0], &[5.0, 6.0], &[3.0, 4.0]];
        let mut handles = Vec::new();
        for inputs in requests {
            let e = e.clone();
            let rows = inputs[0].rows();
            handles.push(tokio::spawn(async move { e.infer(inputs, rows).await }));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut batch_rows = Vec::new();
        for (h, want) in handles.into_iter().zip(expected) {
            let out = h.await.unwrap().expect("every request is answered");
            assert_eq!(out.outputs[0].as_f32().unwrap(), want);
            batch_rows.push(out.batch_rows);
        }
        slow.await.unwrap().unwrap();
        assert_eq!(batch_rows, [1, 3, 3, 1], "rows of the batch each request ran in");
    }
}
