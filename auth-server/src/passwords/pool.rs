//! The pool of password workers: dedicated threads, each with its own [`Workspace`], behind a
//! bounded queue that answers "busy" at once when full.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use zeroize::Zeroizing;

use super::hashing::{hash_blocking, Workspace};
use super::{PasswordError, Verdict};

/// A check waiting for a worker: it runs on the worker's [`Workspace`] and answers through
/// its own channel.
type Job = Box<dyn FnOnce(&mut Workspace) + Send>;

/// What the pool tells whoever keeps its metrics (the server's Prometheus registry), so that
/// hashing depends on no metrics library.
pub trait PoolMetrics: Send + Sync {
    /// A check took (`+1`) or gave back (`-1`) a place in the queue.
    fn queue_depth_changed(&self, delta: i64);
    /// A check waited this long for a worker.
    fn waited(&self, seconds: f64);
}

pub struct Passwords {
    jobs: flume::Sender<Job>,
    pool: Arc<Pool>,
    workers: usize,
    dummy_hash: String,
}

/// What the queue slots of [`Passwords`] share with the jobs that carry them to the workers.
struct Pool {
    /// Waiting plus running checks; bounded by `capacity`.
    in_flight: AtomicUsize,
    capacity: usize,
    metrics: Option<Arc<dyn PoolMetrics>>,
}

impl Passwords {
    /// Starts `workers` threads (each keeps ~19 MiB once it has hashed); `queue` more checks may
    /// wait for one. The threads end when this is dropped.
    pub fn new(
        workers: usize,
        queue: usize,
        metrics: Option<Arc<dyn PoolMetrics>>,
    ) -> Result<Self, PasswordError> {
        let workers = workers.max(1);
        let (jobs, waiting) = flume::unbounded::<Job>();
        for n in 0..workers {
            let waiting = waiting.clone();
            std::thread::Builder::new()
                .name(format!("password-{n}"))
                .spawn(move || {
                    let mut workspace = Workspace::new();
                    while let Ok(job) = waiting.recv() {
                        // A panicking check fails its own request (its answer channel is
                        // dropped) but must not take a worker away from all later ones.
                        let run = std::panic::AssertUnwindSafe(|| job(&mut workspace));
                        if std::panic::catch_unwind(run).is_err() {
                            tracing::error!("a password check panicked; the worker goes on");
                            workspace = Workspace::new();
                        }
                    }
                })
                .map_err(|err| PasswordError::Hashing(format!("starting a worker: {err}")))?;
        }
        let dummy_hash = hash_blocking(&crate::tokens::random_token(24))?;
        Ok(Self {
            jobs,
            pool: Arc::new(Pool {
                in_flight: AtomicUsize::new(0),
                capacity: workers + queue,
                metrics,
            }),
            workers,
            dummy_hash,
        })
    }

    /// How many threads hash.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Verifies against `stored`, or against a dummy hash when there is no such user, so that
    /// the answer takes as long either way.
    pub async fn verify(
        &self,
        password: Zeroizing<String>,
        stored: Option<String>,
    ) -> Result<Verdict, PasswordError> {
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.dummy_hash.clone());
        let verdict = self
            .run(move |workspace| workspace.verify(&password, &stored))
            .await?;
        Ok(if known { verdict } else { Verdict::Invalid })
    }

    pub async fn hash(&self, password: Zeroizing<String>) -> Result<String, PasswordError> {
        self.run(move |workspace| workspace.hash(&password)).await?
    }

    /// Queues `job` for a worker, or answers [`PasswordError::Busy`] at once when the queue is
    /// full. The queue slot travels with the job and is given back when a worker is done with
    /// it, so a cancelled request still counts until its job has left the queue; a worker skips
    /// the job of a request that is gone.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Workspace) -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let slot = QueueSlot::take(&self.pool)?;
        let queued_at = Instant::now();
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |workspace| {
            if answer.is_closed() {
                return;
            }
            if let Some(metrics) = &slot.pool.metrics {
                metrics.waited(queued_at.elapsed().as_secs_f64());
            }
            let result = work(workspace);
            // Free before answering: whoever gets the answer finds the slot free.
            drop(slot);
            let _ = answer.send(result);
        });
        self.jobs
            .send(job)
            .map_err(|_| PasswordError::Hashing("the password workers have stopped".into()))?;
        answered
            .await
            .map_err(|_| PasswordError::Hashing("a password worker failed".into()))
    }
}

/// One place in the bounded queue, given back on drop.
struct QueueSlot {
    pool: Arc<Pool>,
}

impl QueueSlot {
    fn take(pool: &Arc<Pool>) -> Result<Self, PasswordError> {
        let taken = pool
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < pool.capacity).then_some(n + 1)
            });
        match taken {
            Ok(_) => {
                if let Some(metrics) = &pool.metrics {
                    metrics.queue_depth_changed(1);
                }
                Ok(Self { pool: pool.clone() })
            }
            Err(_) => Err(PasswordError::Busy),
        }
    }
}

impl Drop for QueueSlot {
    fn drop(&mut self) {
        self.pool.in_flight.fetch_sub(1, Ordering::AcqRel);
        if let Some(metrics) = &self.pool.metrics {
            metrics.queue_depth_changed(-1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_answers_busy_at_once() {
        let passwords = Arc::new(Passwords::new(1, 0, None).unwrap());
        let slow = {
            let passwords = passwords.clone();
            tokio::spawn(async move {
                passwords
                    .run(|_| std::thread::sleep(std::time::Duration::from_millis(300)))
                    .await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let second = passwords.verify(Zeroizing::new("x".into()), None).await;
        assert!(matches!(second, Err(PasswordError::Busy)));
        slow.await.unwrap().unwrap();
        assert!(passwords
            .verify(Zeroizing::new("x".into()), None)
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn checks_run_on_the_configured_number_of_dedicated_threads() {
        let passwords = Arc::new(Passwords::new(2, 16, None).unwrap());
        let runs = (0..12).map(|_| {
            let passwords = passwords.clone();
            tokio::spawn(async move {
                passwords
                    .run(|_| {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        std::thread::current().name().map(str::to_owned)
                    })
                    .await
            })
        });
        let mut names = std::collections::BTreeSet::new();
        for run in runs {
            names.insert(run.await.unwrap().unwrap());
        }
        let expected: std::collections::BTreeSet<_> = ["password-0", "password-1"]
            .into_iter()
            .map(|name| Some(name.to_owned()))
            .collect();
        assert_eq!(names, expected);
    }

    #[tokio::test]
    async fn a_cancelled_check_holds_its_slot_until_a_worker_has_dropped_it() {
        let passwords = Arc::new(Passwords::new(1, 1, None).unwrap());
        let (started, running) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let busy = {
            let passwords = passwords.clone();
            tokio::spawn(async move {
                passwords
                    .run(move |_| {
                        started.send(()).unwrap();
                        released.recv().unwrap();
                    })
                    .await
            })
        };
        tokio::task::spawn_blocking(move || running.recv().unwrap())
            .await
            .unwrap();
        // Queued behind the busy worker, then given up by its caller.
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let queued = {
            let ran = ran.clone();
            tokio::time::timeout(
                std::time::Duration::from_millis(50),
                passwords.run(move |_| ran.store(true, Ordering::SeqCst)),
            )
            .await
        };
        assert!(queued.is_err(), "the queued check cannot have finished");
        assert!(matches!(
            passwords.run(|_| ()).await,
            Err(PasswordError::Busy)
        ));
        release.send(()).unwrap();
        busy.await.unwrap().unwrap();
        // The worker then takes the cancelled job, skips it and gives its slot back.
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match passwords.run(|_| ()).await {
                Ok(()) => break,
                Err(PasswordError::Busy) if Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                Err(err) => panic!("the cancelled job kept its slot: {err}"),
            }
        }
        assert!(
            !ran.load(Ordering::SeqCst),
            "the job of a cancelled request must not run"
        );
    }

    #[tokio::test]
    async fn a_panicking_check_fails_alone_and_the_worker_goes_on() {
        let passwords = Passwords::new(1, 4, None).unwrap();
        let failed = passwords.run(|_| panic!("a bug in a check")).await;
        assert!(matches!(failed, Err(PasswordError::Hashing(_))));
        assert_eq!(passwords.run(|_| 7).await.unwrap(), 7);
    }
}
