//! When the summarization tasks run: each on its own schedule on the site clock (counted from
//! the start, every `Task::every` of the site's schedules), or at once on demand
//! (`POST /api/v1/summarize`). A task run on demand starts its schedule over. One thread runs
//! them all, one run at a time, so tasks never race each other over the store.

use std::io;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use protocol::Timestamp;

use super::tasks::{Summarizer, Task, TaskRun};
use crate::clock::SiteClock;
use crate::site::live::LiveSite;

enum Request {
    Run(Vec<Task>, tokio::sync::oneshot::Sender<Vec<TaskRun>>),
    Stop,
}

/// The summarizer's thread (see the module documentation).
#[derive(Debug)]
pub struct Schedule {
    requests: Sender<Request>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Schedule {
    /// Starts the thread at nice `nice` ([`crate::priority`]); with `at_start`, the three
    /// summarizers run once first, so the views are not empty until their first scheduled run.
    pub fn start(
        summarizer: Arc<Summarizer>,
        site: Arc<LiveSite>,
        clock: SiteClock,
        at_start: bool,
        nice: i32,
    ) -> io::Result<Schedule> {
        let (requests, received) = channel();
        let thread = std::thread::Builder::new().name("summarizer".into()).spawn(move || {
            crate::priority::lower_this_thread_or_warn(nice, summarizer.log(), "The summarizers");
            run(&summarizer, &site, clock, &received, at_start)
        })?;
        Ok(Schedule { requests, thread: Mutex::new(Some(thread)) })
    }

    /// Runs `tasks` now (in `Task::ALL` order) and returns what each did; `None` once stopping.
    pub async fn run_now(&self, tasks: Vec<Task>) -> Option<Vec<TaskRun>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.requests.send(Request::Run(tasks, tx)).ok()?;
        rx.await.ok()
    }

    /// Stops the thread (after the run in progress) and waits for it.
    pub fn stop(&self) {
        let _ = self.requests.send(Request::Stop);
        if let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

fn run(
    summarizer: &Summarizer,
    site: &LiveSite,
    clock: SiteClock,
    requests: &Receiver<Request>,
    at_start: bool,
) {
    let schedules = site.read().schedules;
    let mut last = [clock.now(); Task::COUNT];
    let run = |tasks: &[Task], last: &mut [Timestamp; Task::COUNT]| {
        let now = clock.now();
        let runs = summarizer.run(site, tasks, now);
        for r in &runs {
            if let Some(i) = Task::ALL.iter().position(|&t| t == r.task) {
                last[i] = now;
            }
        }
        runs
    };
    if at_start {
        run(&Task::SUMMARIZERS, &mut last);
    }
    let due = |task: Task, last: Timestamp| {
        let every = i64::try_from(task.every(&schedules).as_micros()).unwrap_or(i64::MAX);
        Timestamp(last.0.saturating_add(every))
    };
    loop {
        let next = Task::ALL
            .iter()
            .zip(&last)
            .map(|(&t, &l)| clock.real_instant(due(t, l)))
            .min()
            .unwrap_or_else(Instant::now);
        match requests.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Ok(Request::Run(tasks, reply)) => {
                let _ = reply.send(run(&tasks, &mut last));
            }
            Ok(Request::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {
                let now = clock.now();
                let tasks: Vec<Task> = Task::ALL
                    .iter()
                    .zip(&last)
                    .filter(|&(&t, &l)| due(t, l) <= now)
                    .map(|(&t, _)| t)
                    .collect();
                run(&tasks, &mut last);
            }
        }
    }
}
