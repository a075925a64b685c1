//! Password hashing with argon2id, on one thread of its own.
//!
//! Why one thread: each hash fills a block of memory (its cost), and the allocator keeps
//! such a block in the arena of whichever thread freed it. Hashing on a pool of threads
//! left one block per thread resident (over 200 MB after a burst of sign-ups); one thread
//! keeps one. It also bounds the CPU that a storm of logins can take from the node.
//!
//! The cost is OWASP's argon2id setting of 7 MiB, 5 passes, 1 lane: as strong as the
//! 19 MiB, 2 passes default against the same attacker, for a third of the memory.
//! Hashes carry their parameters, so hashes made with other settings still verify.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::oneshot;
use tonic::Status;

enum Job {
    Hash(String, oneshot::Sender<Result<String, String>>),
    Verify(String, String, oneshot::Sender<bool>),
}

/// A handle on the hashing thread; it ends when the last handle goes.
#[derive(Clone)]
pub struct Passwords {
    jobs: Arc<Mutex<mpsc::Sender<Job>>>,
}

fn params() -> Params {
    Params::new(7 * 1024, 5, 1, None).expect("valid argon2 parameters")
}

/// The hashing itself, with one block of memory allocated once and used for every hash
/// (the crate's own allocation per hash was not given back to the system).
struct Hasher {
    blocks: Vec<Block>,
    /// What an unknown account's login is checked against, so that a wrong username
    /// costs the same time as a wrong password.
    decoy: String,
}

impl Hasher {
    fn new() -> Hasher {
        let mut h = Hasher {
            blocks: vec![Block::default(); params().block_count()],
            decoy: String::new(),
        };
        h.decoy = h.hash("decoy password").unwrap_or_default();
        h
    }

    fn hash(&mut self, password: &str) -> Result<String, String> {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| format!("no randomness for a salt: {e}"))?;
        let params = params();
        let mut out = [0u8; 32];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
            .hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, &mut self.blocks)
            .map_err(|e| e.to_string())?;
        let hash = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).map_err(|e| e.to_string())?,
            salt: Some(Salt::new(&salt).map_err(|e| e.to_string())?),
            hash: Some(Output::new(&out).map_err(|e| e.to_string())?),
        };
        Ok(hash.to_string())
    }

    /// Whether `password` matches `hash` (an empty one is the decoy's).
    fn verify(&mut self, password: &str, hash: &str) -> bool {
        let hash = if hash.is_empty() {
            self.decoy.clone()
        } else {
            hash.to_string()
        };
        let Ok(parsed) = PasswordHash::new(&hash) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            return false;
        };
        let (Ok(algorithm), Ok(params)) = (
            Algorithm::try_from(parsed.algorithm.as_str()),
            Params::try_from(&parsed),
        ) else {
            return false;
        };
        let version = match parsed.version.map(Version::try_from) {
            None => Version::default(),
            Some(Ok(v)) => v,
            Some(Err(_)) => return false,
        };
        // A hash made with other settings needs a block of its own size.
        let mut other;
        let blocks = if params.block_count() == self.blocks.len() {
            &mut self.blocks
        } else {
            other = vec![Block::default(); params.block_count()];
            &mut other
        };
        let mut out = vec![0u8; expected.len()];
        let computed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
            password.as_bytes(),
            salt,
            &mut out,
            blocks,
        );
        // Output compares in constant time.
        computed.is_ok() && Output::new(&out).is_ok_and(|o| o == *expected)
    }
}

impl Passwords {
    pub fn start() -> std::io::Result<Passwords> {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("passwords".into())
            .spawn(move || {
                let mut hasher = Hasher::new();
                for job in rx {
                    match job {
                        Job::Hash(password, reply) => {
                            let _ = reply.send(hasher.hash(&password));
                        }
                        Job::Verify(password, hash, reply) => {
                            let _ = reply.send(hasher.verify(&password, &hash));
                        }
                    }
                }
            })?;
        Ok(Passwords {
            jobs: Arc::new(Mutex::new(tx)),
        })
    }

    fn submit(&self, job: Job) -> Result<(), Status> {
        self.jobs
            .lock()
            .map_err(|_| Status::internal("the password thread failed"))?
            .send(job)
            .map_err(|_| Status::unavailable("the node is shutting down"))
    }

    pub async fn hash(&self, password: String) -> Result<String, Status> {
        let (tx, rx) = oneshot::channel();
        self.submit(Job::Hash(password, tx))?;
        rx.await
            .map_err(|_| Status::internal("the password thread failed"))?
            .map_err(|e| Status::internal(format!("password hashing failed: {e}")))
    }

    /// Whether `password` matches `hash`; with an empty hash (no such account), checks
    /// against a decoy, which takes as long and never matches.
    pub async fn verify(&self, password: String, hash: String) -> Result<bool, Status> {
        let decoy = hash.is_empty();
        let (tx, rx) = oneshot::channel();
        self.submit(Job::Verify(password, hash, tx))?;
        let ok = rx
            .await
            .map_err(|_| Status::internal("the password thread failed"))?;
        Ok(ok && !decoy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let p = Passwords::start().unwrap();
        let hash = p.hash("s3cret".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"), "{hash}");
        assert!(p.verify("s3cret".into(), hash.clone()).await.unwrap());
        assert!(!p.verify("wrong".into(), hash).await.unwrap());
        // No account: the decoy is checked, and nothing matches it.
        assert!(
            !p.verify("decoy password".into(), String::new())
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn hashes_made_with_other_settings_still_verify() {
        use argon2::password_hash::PasswordHasher;
        let old = Argon2::default().hash_password(b"pw").unwrap().to_string();
        let p = Passwords::start().unwrap();
        assert!(p.verify("pw".into(), old).await.unwrap());
    }
}
