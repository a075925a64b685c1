//! `raftchat chat`: the chat client for people.
//!
//! The session (user and token) is kept in a file readable by its owner only:
//! `$RAFTCHAT_SESSION` if set, else `$XDG_CONFIG_HOME/raftchat/session`, else
//! `~/.config/raftchat/session`.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::Failure;
use raftchat::client::{Client, ClientError};
use raftchat::proto::chat::ChatMessage;

#[derive(Args)]
pub struct ChatArgs {
    /// The cluster's nodes, comma-separated (ADDRESS,ADDRESS,...).
    #[arg(long, value_name = "ADDRESSES", value_delimiter = ',', required = true)]
    cluster: Vec<String>,
    /// Read the password from standard input instead of prompting.
    #[arg(long, global = true)]
    password_stdin: bool,
    /// Give up on a request after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, global = true)]
    timeout: f64,
    #[command(subcommand)]
    command: ChatCommand,
}

#[derive(Subcommand)]
enum ChatCommand {
    /// Create an account and log in as it.
    Register { user: String },
    /// Log in (prints how many messages are unread).
    Login { user: String },
    /// Log out and forget the session.
    Logout,
    /// List accounts whose names match a glob pattern.
    List {
        #[arg(default_value = "*")]
        pattern: String,
    },
    /// Send a message to another user, online or not.
    Send { to: String, text: String },
    /// Read unread messages, or one conversation with --with.
    Read {
        #[arg(long)]
        with: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Delete some of your messages by id.
    DeleteMessages {
        #[arg(required = true)]
        ids: Vec<u64>,
    },
    /// Delete your account and every message it sent or received.
    DeleteAccount,
    /// Print messages as they arrive, until interrupted.
    Watch,
}

fn session_path() -> Result<PathBuf, Failure> {
    if let Some(p) = std::env::var_os("RAFTCHAT_SESSION") {
        return Ok(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .ok_or_else(|| {
            Failure::new(1, "no HOME: set RAFTCHAT_SESSION to a file for the session")
        })?;
    Ok(base.join("raftchat").join("session"))
}

fn save_session(user: &str, token: &str) -> Result<(), Failure> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = session_path()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::new(1, format!("{}: {e}", dir.display())))?;
    }
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        writeln!(f, "{user}\n{token}")
    };
    write().map_err(|e| Failure::new(1, format!("{}: {e}", path.display())))
}

fn load_session() -> Result<(String, String), Failure> {
    let path = session_path()?;
    let text = std::fs::read_to_string(&path)
        .map_err(|_| Failure::new(1, "not logged in: run `raftchat chat ... login USER` first"))?;
    let mut lines = text.lines();
    match (lines.next(), lines.next()) {
        (Some(user), Some(token)) if !user.is_empty() && !token.is_empty() => {
            Ok((user.to_string(), token.to_string()))
        }
        _ => Err(Failure::new(
            1,
            format!("{}: not a session file", path.display()),
        )),
    }
}

fn password(from_stdin: bool) -> Result<String, Failure> {
    if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure::new(1, format!("reading the password: {e}")))?;
        return Ok(line.trim_end_matches(['\n', '\r']).to_string());
    }
    rpassword::prompt_password("password: ")
        .map_err(|e| Failure::new(1, format!("reading the password: {e}")))
}

fn fail(what: &str, e: ClientError) -> Failure {
    Failure::new(1, format!("{what}: {e}"))
}

fn print_message(m: &ChatMessage) {
    let mark = if m.read { "" } else { "  (new)" };
    println!("#{} {} -> {}: {}{mark}", m.id, m.from, m.to, m.text);
}

pub fn run(args: ChatArgs) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(1, format!("cannot start the runtime: {e}")))?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: ChatArgs) -> Result<(), Failure> {
    let mut client = Client::new(args.cluster);
    client.timeouts.deadline = Duration::from_secs_f64(args.timeout.max(0.1));
    match args.command {
        ChatCommand::Register { user } => {
            let pw = password(args.password_stdin)?;
            let reply = client
                .register(&user, &pw)
                .await
                .map_err(|e| fail("register", e))?;
            save_session(&user, &reply.token)?;
            println!("registered {user}; logged in");
        }
        ChatCommand::Login { user } => {
            let pw = password(args.password_stdin)?;
            let reply = client
                .login(&user, &pw)
                .await
                .map_err(|e| fail("login", e))?;
            save_session(&user, &reply.token)?;
            println!(
                "logged in as {user}; {} unread message{}",
                reply.unread,
                if reply.unread == 1 { "" } else { "s" }
            );
        }
        ChatCommand::Logout => {
            let (user, token) = load_session()?;
            client
                .logout(&user, &token)
                .await
                .map_err(|e| fail("logout", e))?;
            let _ = std::fs::remove_file(session_path()?);
            println!("logged out {user}");
        }
        ChatCommand::List { pattern } => {
            let mut after = String::new();
            loop {
                let page = client
                    .list_accounts(&pattern, &after, 1000)
                    .await
                    .map_err(|e| fail("list", e))?;
                for user in &page {
                    println!("{user}");
                }
                match page.last() {
                    Some(last) if page.len() == 1000 => after = last.clone(),
                    _ => break,
                }
            }
        }
        ChatCommand::Send { to, text } => {
            let (user, token) = load_session()?;
            let reply = client
                .send(&user, &token, &to, &text)
                .await
                .map_err(|e| fail("send", e))?;
            println!("sent message #{} to {to}", reply.id);
        }
        ChatCommand::Read { with, limit } => {
            raftchat::chat::validate::page(limit)
                .map_err(|e| Failure::new(1, format!("read: {e}")))?;
            let (user, token) = load_session()?;
            let with = with.unwrap_or_default();
            let messages = client
                .read(&user, &token, &with, 0, limit)
                .await
                .map_err(|e| fail("read", e))?;
            if messages.is_empty() {
                println!("no messages");
            }
            for m in &messages {
                print_message(m);
            }
        }
        ChatCommand::DeleteMessages { ids } => {
            let (user, token) = load_session()?;
            let n = client
                .delete_messages(&user, &token, ids, false)
                .await
                .map_err(|e| fail("delete-messages", e))?;
            println!("deleted {n} message{}", if n == 1 { "" } else { "s" });
        }
        ChatCommand::DeleteAccount => {
            let (user, token) = load_session()?;
            client
                .delete_account(&user, &token)
                .await
                .map_err(|e| fail("delete-account", e))?;
            let _ = std::fs::remove_file(session_path()?);
            println!("deleted account {user}");
        }
        ChatCommand::Watch => {
            let (user, token) = load_session()?;
            watch(&mut client, &user, &token).await?;
        }
    }
    Ok(())
}

/// Prints messages as they arrive; after a failover, resumes from the last one seen.
async fn watch(client: &mut Client, user: &str, token: &str) -> Result<(), Failure> {
    client.timeouts.deadline = Duration::from_secs(3600);
    let e = client.follow(user, token, print_message).await;
    Err(if e.code == tonic::Code::Unauthenticated {
        Failure::new(1, format!("watch: {}", e.message))
    } else {
        fail("watch", e)
    })
}
