//! How long the chat is down when its leader dies: one client writes continuously (each
//! attempt cut off after 100 ms, then retried on the next node, under the same request id
//! so that nothing is written twice); the leader is SIGKILLed; the figure is the longest
//! gap between two acknowledged writes.

use std::time::{Duration, Instant};

use super::cluster::BenchCluster;
use super::load::{Session, TEXT};
use crate::client::Client;

/// One write as the client saw it: when it was answered, and how long it took.
#[derive(Clone, Debug)]
pub struct Sample {
    pub at_s: f64,
    pub latency_ms: f64,
}

#[derive(Clone, Debug)]
pub struct FailoverRun {
    pub killed: String,
    pub kill_at_s: f64,
    /// The longest time between two acknowledged writes, in ms.
    pub gap_ms: f64,
    pub samples: Vec<Sample>,
}

/// Writes for `before`, kills the leader, writes until `after` has passed since the first
/// write acknowledged after the kill (or 10 s, at most), then brings the node back and
/// waits until it has caught up.
pub async fn run_once(
    cluster: &mut BenchCluster,
    session: &Session,
    peer: &str,
    before: Duration,
    after: Duration,
) -> Result<FailoverRun, String> {
    let leader = cluster.leader(Duration::from_secs(10)).await?;
    let mut client = Client::new(cluster.endpoints());
    client.timeouts.attempt = Duration::from_millis(100);
    client.timeouts.deadline = Duration::from_secs(10);
    // Opens the connections and finds the leader.
    client
        .send(&session.user, &session.token, peer, TEXT)
        .await
        .map_err(|e| format!("the first write failed: {}", e.message))?;
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut kill_at = None;
    let mut resumed = None;
    let hard_stop = before + Duration::from_secs(10);
    while started.elapsed() < hard_stop {
        if kill_at.is_none() && started.elapsed() >= before {
            cluster.sup.kill(&leader)?;
            kill_at = Some(started.elapsed());
        }
        let t = Instant::now();
        let ok = client
            .send(&session.user, &session.token, peer, TEXT)
            .await
            .is_ok();
        if ok {
            samples.push(Sample {
                at_s: started.elapsed().as_secs_f64(),
                latency_ms: t.elapsed().as_secs_f64() * 1e3,
            });
            if kill_at.is_some() && resumed.is_none() {
                resumed = Some(started.elapsed());
            }
        }
        if let Some(r) = resumed
            && started.elapsed() >= r + after
        {
            break;
        }
    }
    let kill_at = kill_at.ok_or("the leader was never killed")?;
    if resumed.is_none() {
        return Err(format!(
            "no write was acknowledged within {:.0}s of killing the leader",
            (hard_stop - kill_at).as_secs_f64()
        ));
    }
    let gap_ms = samples
        .windows(2)
        .map(|w| (w[1].at_s - w[0].at_s) * 1e3)
        .fold(0.0, f64::max);
    // Back to full strength for the next run.
    cluster.sup.start(&leader, None)?;
    cluster.converged(Duration::from_secs(30)).await?;
    Ok(FailoverRun {
        killed: leader,
        kill_at_s: kill_at.as_secs_f64(),
        gap_ms,
        samples,
    })
}

/// The median of some gaps (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn the_median_of_odd_and_even_counts() {
        assert_eq!(median(&[5.0, 1.0, 3.0]), 3.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }
}
