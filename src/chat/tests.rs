//! Every chat operation and every way it can be refused, against the in-memory store.

use super::cmd::*;
use super::query;
use super::*;

/// A cluster-free harness: each request is applied at the next log index, as a client
/// with its own id and sequence numbers would send it.
struct Chat {
    store: MemoryStore,
    index: u64,
    seq: u64,
}

impl Chat {
    fn new() -> Chat {
        Chat {
            store: MemoryStore::default(),
            index: 0,
            seq: 0,
        }
    }

    fn run(&mut self, command: Command) -> Outcome {
        self.seq += 1;
        self.run_as(7, self.seq, command)
    }

    fn run_as(&mut self, client_id: u64, seq: u64, command: Command) -> Outcome {
        self.index += 1;
        let env = Envelope {
            client_id,
            seq,
            time_ms: 1_000 + self.index,
            command,
        };
        apply(&mut self.store, self.index, &env.encode()).unwrap()
    }

    fn register(&mut self, user: &str) -> String {
        let token = format!("tok-{user}-{}", self.index);
        let reply = self.run(Command::Register(Register {
            user: user.into(),
            password_hash: format!("hash-of-{user}"),
            token: token.clone(),
        }));
        assert_eq!(
            reply,
            Ok(Reply::Registered {
                token: token.clone()
            })
        );
        token
    }

    fn send(&mut self, user: &str, token: &str, to: &str, text: &str) -> Outcome {
        self.run(Command::Send(Send {
            user: user.into(),
            token: token.into(),
            to: to.into(),
            text: text.into(),
        }))
    }

    fn read(&mut self, user: &str, token: &str, with: &str, after: u64, limit: u32) -> Outcome {
        self.run(Command::Read(Read {
            user: user.into(),
            token: token.into(),
            with: with.into(),
            after,
            limit,
        }))
    }

    fn texts(outcome: Outcome) -> Vec<String> {
        match outcome {
            Ok(Reply::Messages(ms)) => ms.into_iter().map(|m| m.text).collect(),
            other => panic!("expected messages, got {other:?}"),
        }
    }
}

fn code(outcome: Outcome) -> &'static str {
    outcome.expect_err("expected a refusal").code()
}

#[test]
fn register_refuses_a_taken_name_and_a_bad_one() {
    let mut c = Chat::new();
    c.register("alice");
    let again = c.run(Command::Register(Register {
        user: "alice".into(),
        password_hash: "h".into(),
        token: "t2".into(),
    }));
    assert_eq!(code(again), "already_exists");
    let bad = c.run(Command::Register(Register {
        user: "no spaces".into(),
        password_hash: "h".into(),
        token: "t3".into(),
    }));
    assert_eq!(code(bad), "invalid_argument");
    assert!(query::user_exists(&c.store, "alice").unwrap());
    assert!(!query::user_exists(&c.store, "no spaces").unwrap());
}

#[test]
fn login_counts_unread_and_logout_ends_the_session() {
    let mut c = Chat::new();
    let a = c.register("alice");
    c.register("bob");
    c.send("alice", &a, "bob", "one").unwrap();
    c.send("alice", &a, "bob", "two").unwrap();
    let login = c.run(Command::Login(Login {
        user: "bob".into(),
        token: "bob-2".into(),
    }));
    assert_eq!(
        login,
        Ok(Reply::LoggedIn {
            token: "bob-2".into(),
            unread: 2
        })
    );
    let ghost = c.run(Command::Login(Login {
        user: "ghost".into(),
        token: "g".into(),
    }));
    assert_eq!(code(ghost), "unauthenticated");
    let out = c.run(Command::Logout(Logout {
        user: "bob".into(),
        token: "bob-2".into(),
    }));
    assert_eq!(out, Ok(Reply::LoggedOut));
    assert_eq!(code(c.read("bob", "bob-2", "", 0, 10)), "unauthenticated");
}

#[test]
fn send_checks_the_session_the_recipient_and_the_text() {
    let mut c = Chat::new();
    let a = c.register("alice");
    let b = c.register("bob");
    let sent = c.send("alice", &a, "bob", "hi").unwrap();
    assert!(matches!(sent, Reply::Sent { id, .. } if id == c.index));
    assert_eq!(code(c.send("alice", &a, "carol", "hi")), "not_found");
    assert_eq!(code(c.send("alice", &a, "bob", "")), "invalid_argument");
    let long = "x".repeat(4097);
    assert_eq!(code(c.send("alice", &a, "bob", &long)), "invalid_argument");
    assert_eq!(
        code(c.send("alice", "forged", "bob", "hi")),
        "unauthenticated"
    );
    // bob's token cannot send as alice.
    assert_eq!(code(c.send("alice", &b, "bob", "hi")), "permission_denied");
}

#[test]
fn reading_unread_marks_them_read() {
    let mut c = Chat::new();
    let a = c.register("alice");
    let b = c.register("bob");
    c.send("alice", &a, "bob", "one").unwrap();
    c.send("alice", &a, "bob", "two").unwrap();
    c.send("alice", &a, "bob", "three").unwrap();
    assert_eq!(Chat::texts(c.read("bob", &b, "", 0, 2)), ["one", "two"]);
    assert_eq!(Chat::texts(c.read("bob", &b, "", 0, 10)), ["three"]);
    assert!(Chat::texts(c.read("bob", &b, "", 0, 10)).is_empty());
    // The sender reading the conversation does not mark anything.
    assert_eq!(code(c.read("bob", &b, "", 0, 0)), "invalid_argument");
    assert_eq!(code(c.read("bob", &b, "", 0, 1001)), "invalid_argument");
}

#[test]
fn a_conversation_reads_in_pages_and_names_a_missing_user() {
    let mut c = Chat::new();
    let a = c.register("alice");
    let b = c.register("bob");
    let x = c.register("carol");
    for text in ["a1", "a2"] {
        c.send("alice", &a, "bob", text).unwrap();
    }
    c.send("carol", &x, "bob", "c1").unwrap();
    c.send("bob", &b, "alice", "b1").unwrap();
    let page = c.read("bob", &b, "alice", 0, 2).unwrap();
    let Reply::Messages(first) = page else {
        panic!()
    };
    assert_eq!(
        first.iter().map(|m| &m.text[..]).collect::<Vec<_>>(),
        ["a1", "a2"]
    );
    let rest = c.read("bob", &b, "alice", first[1].id, 10);
    assert_eq!(Chat::texts(rest), ["b1"]);
    // Reading the conversation marked alice's messages read, not carol's.
    assert_eq!(Chat::texts(c.read("bob", &b, "", 0, 10)), ["c1"]);
    assert_eq!(code(c.read("bob", &b, "nobody", 0, 10)), "not_found");
}

#[test]
fn deleting_messages_needs_them_to_be_yours() {
    let mut c = Chat::new();
    let a = c.register("alice");
    let b = c.register("bob");
    let x = c.register("carol");
    let Reply::Sent { id: m1, .. } = c.send("alice", &a, "bob", "one").unwrap() else {
        panic!()
    };
    c.send("alice", &a, "bob", "two").unwrap();
    let del = |ids: Vec<u64>, all| {
        Command::DeleteMessages(DeleteMessages {
            user: "carol".into(),
            token: x.clone(),
            ids,
            all,
        })
    };
    assert_eq!(code(c.run(del(vec![m1], false))), "permission_denied");
    assert_eq!(code(c.run(del(vec![999], false))), "not_found");
    assert_eq!(code(c.run(del(vec![m1], true))), "invalid_argument");
    let mine = Command::DeleteMessages(DeleteMessages {
        user: "bob".into(),
        token: b.clone(),
        ids: vec![m1],
        all: false,
    });
    assert_eq!(c.run(mine), Ok(Reply::Deleted { count: 1 }));
    let all = Command::DeleteMessages(DeleteMessages {
        user: "alice".into(),
        token: a.clone(),
        ids: vec![],
        all: true,
    });
    assert_eq!(c.run(all), Ok(Reply::Deleted { count: 1 }));
    assert!(Chat::texts(c.read("bob", &b, "", 0, 10)).is_empty());
}

#[test]
fn deleting_an_account_takes_its_messages_and_sessions() {
    let mut c = Chat::new();
    let a = c.register("alice");
    let b = c.register("bob");
    c.send("alice", &a, "bob", "bye").unwrap();
    c.send("bob", &b, "alice", "wait").unwrap();
    let gone = c.run(Command::DeleteAccount(DeleteAccount {
        user: "alice".into(),
        token: a.clone(),
    }));
    assert_eq!(gone, Ok(Reply::AccountDeleted));
    assert!(!query::user_exists(&c.store, "alice").unwrap());
    assert_eq!(query::session_user(&c.store, &a).unwrap(), None);
    assert!(Chat::texts(c.read("bob", &b, "", 0, 10)).is_empty());
    assert_eq!(
        query::dump(&c.store).unwrap(),
        "accounts: 1\n  bob\nmessages: 0\n"
    );
}

#[test]
fn a_retried_request_is_applied_once_and_answered_the_same() {
    let mut c = Chat::new();
    let a = c.register("alice");
    c.register("bob");
    let send = Command::Send(Send {
        user: "alice".into(),
        token: a.clone(),
        to: "bob".into(),
        text: "exactly once".into(),
    });
    let first = c.run_as(42, 1, send.clone());
    let retry = c.run_as(42, 1, send.clone());
    assert_eq!(first, retry, "the retry got the first answer");
    assert_eq!(
        query::messages_for(&c.store, "bob", 0, 10).unwrap().len(),
        1
    );
    let stale = c.run_as(42, 0, send.clone());
    assert_eq!(code(stale), "failed_precondition");
    // A refusal is remembered too: a retry does not succeed where the first failed.
    let bad = Command::Send(Send {
        user: "alice".into(),
        token: a.clone(),
        to: "nobody".into(),
        text: "x".into(),
    });
    assert_eq!(code(c.run_as(43, 1, bad.clone())), "not_found");
    c.register("nobody");
    assert_eq!(code(c.run_as(43, 1, bad)), "not_found");
}

#[test]
fn an_undecodable_entry_is_refused_not_fatal() {
    let mut store = MemoryStore::default();
    let outcome = apply(&mut store, 1, b"garbage").unwrap();
    assert_eq!(outcome.unwrap_err().code(), "invalid_argument");
}

#[test]
fn accounts_list_by_glob_in_pages() {
    let mut c = Chat::new();
    for user in ["amy", "bob", "alice", "al"] {
        c.register(user);
    }
    assert_eq!(
        query::list_accounts(&c.store, "a*", "", 10).unwrap(),
        ["al", "alice", "amy"]
    );
    assert_eq!(
        query::list_accounts(&c.store, "*", "", 2).unwrap(),
        ["al", "alice"]
    );
    assert_eq!(
        query::list_accounts(&c.store, "*", "alice", 10).unwrap(),
        ["amy", "bob"]
    );
}

#[test]
fn a_subscriber_resumes_after_the_last_id_it_saw() {
    let mut c = Chat::new();
    let a = c.register("alice");
    c.register("bob");
    let mut ids = Vec::new();
    for text in ["1", "2", "3"] {
        let Reply::Sent { id, .. } = c.send("alice", &a, "bob", text).unwrap() else {
            panic!()
        };
        ids.push(id);
    }
    let missed = query::messages_for(&c.store, "bob", ids[0], 10).unwrap();
    assert_eq!(missed.iter().map(|m| m.id).collect::<Vec<_>>(), ids[1..]);
    assert!(
        query::messages_for(&c.store, "alice", 0, 10)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn the_dump_is_canonical() {
    let mut c = Chat::new();
    let a = c.register("bob");
    let b = c.register("alice");
    c.send("bob", &a, "alice", "hi \"alice\"").unwrap();
    c.read("alice", &b, "", 0, 10).unwrap();
    c.send("alice", &b, "bob", "hello").unwrap();
    assert_eq!(
        query::dump(&c.store).unwrap(),
        "accounts: 2\n  alice\n  bob\nmessages: 2\n  bob -> alice: \"hi \\\"alice\\\"\" (read)\n  alice -> bob: \"hello\" (unread)\n"
    );
}

#[test]
fn a_large_dump_shows_conversations_and_still_tells_states_apart() {
    let build = |last: &str| {
        let mut c = Chat::new();
        let a = c.register("alice");
        c.register("bob");
        for i in 0..query::DUMP_LISTED {
            c.send("alice", &a, "bob", &format!("m{i}")).unwrap();
        }
        c.send("alice", &a, "bob", last).unwrap();
        query::dump(&c.store).unwrap()
    };
    let one = build(&"x".repeat(100));
    let lines: Vec<&str> = one.lines().collect();
    assert_eq!(lines[3], format!("messages: {}", query::DUMP_LISTED + 1));
    assert!(
        lines[4].starts_with("  alice -> bob: 201 messages, 201 unread, crc32c "),
        "{one}"
    );
    assert_eq!(lines.len(), 5, "{one}");
    assert_eq!(one, build(&"x".repeat(100)));
    assert_ne!(one, build(&format!("{}y", "x".repeat(99))));
}

#[test]
fn a_long_text_is_shown_by_its_start_length_and_checksum() {
    let mut c = Chat::new();
    let a = c.register("alice");
    c.register("bob");
    c.send("alice", &a, "bob", &"z".repeat(300)).unwrap();
    let dump = query::dump(&c.store).unwrap();
    let line = dump.lines().last().unwrap();
    assert!(
        line.starts_with(&format!(
            "  alice -> bob: {:?}... (300 bytes, crc32c ",
            "z".repeat(40)
        )),
        "{line}"
    );
}
