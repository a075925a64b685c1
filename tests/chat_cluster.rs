//! The chat service on a real 3-node cluster: every CLI command with its outputs and exit
//! codes, exactly-once sends across a leader crash, a subscriber that sees everything
//! across a leader change, and a client that reconnects to a node that restarted.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::TestCluster;
use raftchat::client::Client;

/// Runs `raftchat chat` against the cluster as the user whose session file is `session`.
fn chat(cluster: &TestCluster, session: &str, stdin: Option<&str>, args: &[&str]) -> Output {
    use std::io::Write;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_raftchat"));
    cmd.arg("chat")
        .arg("--cluster")
        .arg(cluster.addrs().join(","))
        .args(args)
        .env("RAFTCHAT_SESSION", cluster.tmp.path().join(session))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if stdin.is_some() {
        cmd.arg("--password-stdin");
    }
    let mut child = cmd.spawn().expect("spawn raftchat chat");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{input}\n").as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Message ids are log indexes, which depend on everything proposed before: compare
/// outputs with each `#id` written as `#N`.
fn ids_hidden(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '#' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            while chars.peek().is_some_and(|d| d.is_ascii_digit()) {
                chars.next();
            }
            out.push('N');
        }
    }
    out
}

/// The first message id in an output.
fn first_id(text: &str) -> String {
    let at = text.find('#').expect("an id") + 1;
    text[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect()
}

#[track_caller]
fn ok(o: Output, expect: &str) -> String {
    assert_eq!(o.status.code(), Some(0), "stderr: {}", err(&o));
    assert_eq!(ids_hidden(&out(&o)), expect);
    out(&o)
}

#[track_caller]
fn fails(o: Output, expect_err: &str) {
    assert_eq!(o.status.code(), Some(1), "stdout: {}", out(&o));
    assert_eq!(err(&o).trim_end(), expect_err);
    assert_eq!(err(&o).lines().count(), 1, "one line: {}", err(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cli_command_on_a_three_node_cluster() {
    let cluster = TestCluster::start(3);
    cluster.wait_leader(Duration::from_secs(20)).await;
    tokio::task::spawn_blocking(move || {
        let c = &cluster;
        ok(
            chat(c, "a", Some("s3cret"), &["register", "alice"]),
            "registered alice; logged in\n",
        );
        ok(
            chat(c, "b", Some("hunter2"), &["register", "bob"]),
            "registered bob; logged in\n",
        );
        fails(
            chat(c, "x", Some("other"), &["register", "alice"]),
            "raftchat chat: register: user: the username alice is taken",
        );
        fails(
            chat(c, "x", Some("wrong"), &["login", "alice"]),
            "raftchat chat: login: wrong username or password",
        );
        fails(
            chat(c, "x", Some("whatever"), &["login", "nobody"]),
            "raftchat chat: login: wrong username or password",
        );
        fails(
            chat(c, "x", Some("pw"), &["register", "bad name"]),
            "raftchat chat: register: user: a username is 1 to 32 letters, digits, '_', '-' or '.'",
        );
        ok(
            chat(c, "a", None, &["send", "bob", "hello bob"]),
            "sent message #N to bob\n",
        );
        fails(
            chat(c, "a", None, &["send", "carol", "hi"]),
            "raftchat chat: send: to: no user named carol",
        );
        let long = "x".repeat(4097);
        fails(
            chat(c, "a", None, &["send", "bob", &long]),
            "raftchat chat: send: text: must be 1 to 4096 bytes of UTF-8, got 4097",
        );
        ok(chat(c, "a", None, &["list"]), "alice\nbob\n");
        ok(chat(c, "a", None, &["list", "b*"]), "bob\n");
        ok(
            chat(c, "b", Some("hunter2"), &["login", "bob"]),
            "logged in as bob; 1 unread message\n",
        );
        let read = ok(
            chat(c, "b", None, &["read"]),
            "#N alice -> bob: hello bob  (new)\n",
        );
        let hello = first_id(&read);
        ok(chat(c, "b", None, &["read"]), "no messages\n");
        ok(
            chat(c, "b", None, &["send", "alice", "hi alice"]),
            "sent message #N to alice\n",
        );
        ok(
            chat(c, "a", None, &["read", "--with", "bob", "--limit", "10"]),
            "#N alice -> bob: hello bob\n#N bob -> alice: hi alice  (new)\n",
        );
        fails(
            chat(c, "a", None, &["read", "--limit", "0"]),
            "raftchat chat: read: limit: a page holds 1 to 1000 items, got 0",
        );
        fails(
            chat(c, "b", None, &["delete-messages", "999"]),
            "raftchat chat: delete-messages: ids: no message 999",
        );
        ok(
            chat(c, "b", None, &["delete-messages", &hello]),
            "deleted 1 message\n",
        );
        ok(chat(c, "a", None, &["logout"]), "logged out alice\n");
        fails(
            chat(c, "a", None, &["send", "bob", "after logout"]),
            "raftchat chat: not logged in: run `raftchat chat ... login USER` first",
        );
        ok(
            chat(c, "b", None, &["delete-account"]),
            "deleted account bob\n",
        );
        ok(
            chat(c, "a", Some("s3cret"), &["login", "alice"]),
            "logged in as alice; 0 unread messages\n",
        );
        ok(chat(c, "a", None, &["list"]), "alice\n");
        let session = std::fs::metadata(c.tmp.path().join("a")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            session.permissions().mode() & 0o777,
            0o600,
            "the session file is private"
        );
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_sends_across_a_leader_crash_are_stored_once_in_order() {
    let mut cluster = TestCluster::start(3);
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;
    let mut client = cluster.client();
    client.timeouts.attempt = Duration::from_millis(500);
    client.timeouts.deadline = Duration::from_secs(30);
    let alice = client.register("alice", "pw").await.unwrap().token;
    let bob = client.register("bob", "pw").await.unwrap().token;
    for i in 0..200 {
        if i == 60 {
            cluster.kill(leader);
        }
        client
            .send("alice", &alice, "bob", &format!("m{i}"))
            .await
            .unwrap_or_else(|e| panic!("send {i} failed: {e}"));
    }
    let mut texts = Vec::new();
    let mut after = 0;
    loop {
        let page = client
            .read("bob", &bob, "alice", after, 1000)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = last.id;
        texts.extend(page.into_iter().map(|m| m.text));
    }
    let expected: Vec<String> = (0..200).map(|i| format!("m{i}")).collect();
    assert_eq!(texts, expected, "every message once, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_on_a_follower_sees_every_message_across_a_leader_change() {
    let mut cluster = TestCluster::start(3);
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;
    let follower = (leader + 1) % 3;
    let mut writer = cluster.client();
    writer.timeouts.attempt = Duration::from_millis(500);
    writer.timeouts.deadline = Duration::from_secs(30);
    let alice = writer.register("alice", "pw").await.unwrap().token;
    let bob = writer.register("bob", "pw").await.unwrap().token;
    // The subscriber talks to the follower only.
    let mut reader = Client::new(vec![cluster.nodes[follower].addr.clone()]);
    let mut stream = reader.subscribe("bob", &bob, 0).await.unwrap();
    for i in 0..10 {
        writer
            .send("alice", &alice, "bob", &format!("before {i}"))
            .await
            .unwrap();
    }
    cluster.kill(leader);
    for i in 0..10 {
        writer
            .send("alice", &alice, "bob", &format!("after {i}"))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    while seen.len() < 20 {
        let next = tokio::time::timeout(Duration::from_secs(20), stream.message()).await;
        match next {
            Ok(Ok(Some(m))) => seen.push(m.text),
            other => panic!("the stream stopped after {seen:?}: {other:?}"),
        }
    }
    let expected: Vec<String> = (0..10)
        .map(|i| format!("before {i}"))
        .chain((0..10).map(|i| format!("after {i}")))
        .collect();
    assert_eq!(seen, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_one_node_reconnects_when_that_node_restarts() {
    let mut cluster = TestCluster::start(3);
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;
    let mut writer = cluster.client();
    writer.timeouts.deadline = Duration::from_secs(30);
    writer.register("alice", "pw").await.unwrap();
    let bob = writer.register("bob", "pw").await.unwrap().token;
    // A follower, so that the cluster keeps its leader while this node is down.
    let node = (leader + 1) % 3;
    let mut reader = Client::new(vec![cluster.nodes[node].addr.clone()]);
    reader.timeouts.attempt = Duration::from_millis(500);
    reader.timeouts.deadline = Duration::from_secs(30);
    assert!(
        reader
            .read("bob", &bob, "alice", 0, 10)
            .await
            .unwrap()
            .is_empty()
    );

    cluster.kill(node);
    reader.timeouts.deadline = Duration::from_millis(300);
    let refused = reader.read("bob", &bob, "alice", 0, 10).await;
    assert!(refused.is_err(), "a dead node answers nothing");
    cluster.restart(node);

    // The connection it had died with the node: the same client opens a new one.
    reader.timeouts.deadline = Duration::from_secs(30);
    let after = reader.read("bob", &bob, "alice", 0, 10).await;
    assert!(
        after.unwrap().is_empty(),
        "the restarted node serves the same client"
    );
}
