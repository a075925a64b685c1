//! The `watch` step: a user's chat screen kept open on one node, printing each message as
//! it arrives, the way the demo shows that a follower serves live delivery. The stream
//! resumes after the last message seen when its node goes away, as a real client does.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::client::Client;

pub struct Watch {
    seen: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Watch {
    /// Opens the stream through `via` first (any node after a failure), with the user's
    /// session token; `show` formats a line for each message that arrives.
    pub fn start(
        mut client: Client,
        via: Option<String>,
        user: String,
        token: String,
        show: impl Fn(&str) -> String + Send + Sync + 'static,
    ) -> Watch {
        let seen = Arc::new(AtomicU64::new(0));
        let counter = seen.clone();
        if let Some(addr) = &via {
            client.prefer(addr);
        }
        client.timeouts.deadline = Duration::from_secs(3600);
        let task = tokio::spawn(async move {
            // It ends only if the session is refused; the step waiting on it then says so.
            let _ = client
                .follow(&user, &token, |m| {
                    counter.fetch_add(1, Ordering::Relaxed);
                    println!("{}", show(&format!("{}: {:?}", m.from, m.text)));
                })
                .await;
        });
        Watch { seen, task }
    }

    /// How many messages have arrived.
    pub fn seen(&self) -> u64 {
        self.seen.load(Ordering::Relaxed)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}
