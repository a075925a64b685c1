//! `raftchat node` as an operator runs it: stock gRPC health checks, SIGTERM, JSON logs,
//! a config file, joining a running cluster, refusing a corrupt data directory, and
//! `raftchat chat watch`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{TestCluster, free_port};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_raftchat"))
}

/// Kills a child on drop, whatever happens in the test.
struct Guard(std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for a child to exit, up to `timeout`.
fn wait_exit(child: &mut std::process::Child, timeout: Duration) -> Option<i32> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Starts a single-node cluster from a config file, with JSON logs to a file.
fn single_node(tmp: &std::path::Path, extra: &[&str]) -> (Guard, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let config = tmp.join("node.conf");
    std::fs::write(
        &config,
        format!(
            "# a single-node cluster\nid = n1\nlisten = {addr}\ndata-dir = {}\nheartbeat_ms = 20\n",
            tmp.join("n1").display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(tmp.join("n1.log")).unwrap();
    let child = bin()
        .args(["node", "--config"])
        .arg(&config)
        .args(extra)
        .stdin(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    (Guard(child), addr)
}

async fn wait_serving(addr: &str) {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
    let started = Instant::now();
    loop {
        let probe = async {
            let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                .ok()?
                .connect()
                .await
                .ok()?;
            let mut client = HealthClient::new(channel);
            let request = HealthCheckRequest {
                service: "raftchat.chat.Chat".into(),
            };
            let reply = client.check(request).await.ok()?;
            Some(reply.into_inner().status)
        };
        if probe.await == Some(ServingStatus::Serving as i32) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{addr} never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_json_logs_config_file_and_a_clean_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut node, addr) = single_node(tmp.path(), &["--log-format", "json"]);
    wait_serving(&addr).await;
    let mut client = raftchat::client::Client::new(vec![addr.clone()]);
    client.register("alice", "pw").await.unwrap();
    kill(Pid::from_raw(node.0.id() as i32), Signal::SIGTERM).unwrap();
    let code = tokio::task::spawn_blocking(move || {
        let code = wait_exit(&mut node.0, Duration::from_secs(10));
        (code, node)
    })
    .await
    .unwrap()
    .0;
    assert_eq!(code, Some(0), "SIGTERM ends the node cleanly");
    let log = std::fs::read_to_string(tmp.path().join("n1.log")).unwrap();
    for line in log.lines() {
        assert!(
            line.starts_with('{') && line.ends_with('}'),
            "not JSON: {line}"
        );
    }
    assert!(log.contains("\"stopped cleanly\""), "{log}");
    assert!(
        log.contains("\"id\":\"n1\""),
        "every line names the node: {log}"
    );
    // The account is still there after the restart.
    let (_node, addr) = single_node(tmp.path(), &[]);
    wait_serving(&addr).await;
    let mut client = raftchat::client::Client::new(vec![addr]);
    assert!(client.check_username("alice").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_a_corrupt_data_directory_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut node, addr) = single_node(tmp.path(), &[]);
    wait_serving(&addr).await;
    let mut client = raftchat::client::Client::new(vec![addr]);
    client.register("alice", "pw").await.unwrap();
    client.register("bob", "pw").await.unwrap();
    let _ = node.0.kill();
    let _ = node.0.wait();
    let log_dir = tmp.path().join("n1/log");
    let segment = std::fs::read_dir(&log_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut data = std::fs::read(&segment).unwrap();
    data[8 + 8 + 2] ^= 0x10; // inside the first record, with records after it
    std::fs::write(&segment, &data).unwrap();
    let (mut node, _) = single_node(tmp.path(), &[]);
    let code = tokio::task::spawn_blocking(move || wait_exit(&mut node.0, Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(code, Some(1));
    let log = std::fs::read_to_string(tmp.path().join("n1.log")).unwrap();
    let expected = format!(
        "raftchat node: cannot start on {}: corrupt log record in {} at byte 8: checksum mismatch",
        tmp.path().join("n1").display(),
        segment.display()
    );
    assert_eq!(log.lines().last(), Some(expected.as_str()), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_node_joins_and_becomes_a_voter() {
    let cluster = TestCluster::start(3);
    cluster.wait_leader(Duration::from_secs(20)).await;
    let mut client = cluster.client();
    client.register("alice", "pw").await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let log = std::fs::File::create(tmp.path().join("n4.log")).unwrap();
    let _n4 = Guard(
        bin()
            .args([
                "node",
                "--id",
                "n4",
                "--listen",
                &addr,
                "--join",
                &cluster.nodes[0].addr,
            ])
            .arg("--data-dir")
            .arg(tmp.path().join("n4"))
            .stdin(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let mut n4 = raftchat::client::Client::new(vec![addr.clone()]);
    let started = Instant::now();
    loop {
        if let Ok(st) = n4.status_of(0).await
            && st.members.iter().any(|m| m.id == "n4" && m.voter)
            && st.applied >= 3
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "n4 did not join; see {}",
            tmp.path().display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // It serves linearizable reads of what was written before it joined.
    assert!(n4.check_username("alice").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_messages_as_they_arrive() {
    let cluster = TestCluster::start(3);
    cluster.wait_leader(Duration::from_secs(20)).await;
    let mut client = cluster.client();
    let alice = client.register("alice", "pw").await.unwrap().token;
    let bob = client.register("bob", "pw").await.unwrap().token;
    let session = cluster.tmp.path().join("bob.session");
    std::fs::write(&session, format!("bob\n{bob}\n")).unwrap();
    let mut watcher = Guard(
        bin()
            .args(["chat", "--cluster", &cluster.addrs().join(","), "watch"])
            .env("RAFTCHAT_SESSION", &session)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = watcher.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    for text in ["one", "two"] {
        client.send("alice", &alice, "bob", text).await.unwrap();
    }
    let mut lines = Vec::new();
    while lines.len() < 2 {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("watch printed nothing");
        lines.push(line);
    }
    assert!(lines[0].ends_with("alice -> bob: one  (new)"), "{lines:?}");
    assert!(lines[1].ends_with("alice -> bob: two  (new)"), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_transfers_leadership_compacts_and_removes_a_node() {
    use raftchat::proto::admin::admin_client::AdminClient;
    use raftchat::proto::admin::{CompactRequest, RemoveNodeRequest, TransferLeaderRequest};
    let cluster = TestCluster::start(3);
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;
    let mut client = cluster.client();
    client.register("alice", "pw").await.unwrap();
    let admin = |i: usize| {
        let addr = cluster.nodes[i].addr.clone();
        async move {
            AdminClient::connect(format!("http://{addr}"))
                .await
                .unwrap()
        }
    };
    // Transfer to a named follower.
    let target = (leader + 1) % 3;
    let target_id = cluster.nodes[target].id.clone();
    admin(leader)
        .await
        .transfer_leader(TransferLeaderRequest {
            id: target_id.clone(),
        })
        .await
        .unwrap();
    let started = Instant::now();
    while client.status_of(target).await.map(|s| s.role) != Ok("leader".to_string()) {
        assert!(started.elapsed() < Duration::from_secs(5), "no transfer");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let st = client.status_of(target).await.unwrap();
    assert_eq!(st.leader, target_id);
    assert_eq!(
        st.progress.len(),
        3,
        "the leader reports every node's match index"
    );
    // Compact: a snapshot at the applied index.
    let snap = admin(target)
        .await
        .compact(CompactRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(snap.snapshot_index >= 2);
    assert_eq!(
        client.status_of(target).await.unwrap().snapshot_index,
        snap.snapshot_index
    );
    // Remove the old leader; the other two carry on.
    let removed = cluster.nodes[leader].id.clone();
    admin(target)
        .await
        .remove_node(RemoveNodeRequest {
            id: removed.clone(),
        })
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let st = client.status_of(target).await.unwrap();
        if st.members.len() == 2 && st.members.iter().all(|m| m.id != removed) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "not removed: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    client.register("bob", "pw").await.unwrap();
    // A change while another is in flight is refused or waits, never both applied at once;
    // a bad one is refused as such.
    let err = admin(target)
        .await
        .remove_node(RemoveNodeRequest {
            id: "nobody".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
}
