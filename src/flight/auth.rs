//! Who may talk to `weir serve`: the users file (`--users FILE`), password checks (argon2 PHC
//! strings or, discouraged, plain passwords), and the parsing of the `authorization` header a
//! Flight client sends (`Basic base64(user:password)` on the handshake, `Bearer <token>` on
//! every later call). Tokens themselves live with the sessions (see [`super::sessions`]).
//!
//! Passwords never reach a log line: errors name the user and the file line, never the secret.

use std::path::Path;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};

use crate::error::{Error, Result};

/// One configured user.
#[derive(Clone)]
struct User {
    name: String,
    secret: Secret,
}

#[derive(Clone)]
enum Secret {
    /// An argon2 PHC string (`$argon2id$v=19$...`), as printed by `weir hash-password`.
    Hash(String),
    /// A plain password (accepted, but `weir hash-password` is preferred).
    Plain(String),
}

/// The users allowed to connect. Empty: no authentication (the server then binds loopback only).
#[derive(Clone, Default)]
pub struct Users {
    users: Vec<User>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        let names: Vec<&str> = self.users.iter().map(|u| u.name.as_str()).collect();
        f.debug_struct("Users").field("names", &names).finish()
    }
}

impl Users {
    /// No users: authentication is off.
    pub fn none() -> Self {
        Self::default()
    }

    /// Whether authentication is on.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// How many users are configured.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Parses a users file: one `name:password` or `name:<argon2 PHC string>` per line; blank
    /// lines and lines starting with `#` are skipped.
    ///
    /// # Errors
    /// `Invalid` naming the line of a malformed entry or a duplicate user.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let mut users: Vec<User> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = format!("{origin}, line {}", i + 1);
            let Some((name, secret)) = line.split_once(':') else {
                return Err(Error::invalid(format!(
                    "{at}: expected `name:password` or `name:<hash from weir hash-password>`"
                )));
            };
            let name = name.trim();
            if name.is_empty() {
                return Err(Error::invalid(format!("{at}: the user name is empty")));
            }
            if secret.is_empty() {
                return Err(Error::invalid(format!(
                    "{at}: user `{name}` has an empty password"
                )));
            }
            if users.iter().any(|u| u.name == name) {
                return Err(Error::invalid(format!("{at}: user `{name}` appears twice")));
            }
            let secret = if secret.starts_with("$argon2") {
                let malformed = |why: String| {
                    Error::invalid(format!(
                        "{at}: user `{name}` has a malformed argon2 hash ({why}); make one with `weir hash-password`"
                    ))
                };
                let hash = PasswordHash::new(secret).map_err(|e| malformed(e.to_string()))?;
                if hash.salt.is_none() || hash.hash.is_none() {
                    return Err(malformed("no salt or hash value".to_string()));
                }
                Secret::Hash(secret.to_string())
            } else {
                Secret::Plain(secret.to_string())
            };
            users.push(User {
                name: name.to_string(),
                secret,
            });
        }
        Ok(Self { users })
    }

    /// Reads a users file; a file that group or others can read gets a warning on stderr.
    ///
    /// # Errors
    /// `External` when the file cannot be read; `Invalid` for a malformed entry; `Invalid`
    /// when the file holds no user.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("cannot read the users file {}", path.display()), e))?;
        let users = Self::parse(&text, &path.display().to_string())?;
        if users.is_empty() {
            return Err(Error::invalid(format!(
                "the users file {} holds no user",
                path.display()
            )));
        }
        if let Some(mode) = readable_by_others(path) {
            eprintln!(
                "[WARNING] the users file {} is readable by other users (mode {mode:o}); run `chmod 600 {}`",
                path.display(),
                path.display()
            );
        }
        Ok(users)
    }

    /// Checks a user's password.
    pub fn verify(&self, name: &str, password: &str) -> bool {
        let Some(user) = self.users.iter().find(|u| u.name == name) else {
            // Spend about the same time as for a known user, so names cannot be probed by timing.
            let _ = hash_password(password);
            return false;
        };
        match &user.secret {
            Secret::Hash(phc) => match PasswordHash::new(phc) {
                Ok(hash) => Argon2::default()
                    .verify_password(password.as_bytes(), &hash)
                    .is_ok(),
                Err(_) => false,
            },
            Secret::Plain(expected) => constant_time_eq(expected.as_bytes(), password.as_bytes()),
        }
    }
}

/// The mode bits when group or others may read the file (Unix only).
fn readable_by_others(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o044 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Hashes a password as an argon2id PHC string with a random salt (`weir hash-password`).
///
/// # Errors
/// `Internal` if argon2 rejects its own parameters.
pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::internal(format!("cannot hash the password: {e}")))
}

/// What an `authorization` header carries.
#[derive(Debug, PartialEq, Eq)]
pub enum Credentials {
    /// `Basic base64(user:password)`.
    Basic { user: String, password: String },
    /// `Bearer <token>`.
    Bearer(String),
}

/// Parses an `authorization` header value.
///
/// # Errors
/// `Invalid` for another scheme or a malformed value (the message never holds the secret).
pub fn parse_authorization(value: &str) -> Result<Credentials> {
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        if rest.is_empty() {
            return Err(Error::invalid("the bearer token is empty"));
        }
        return Ok(Credentials::Bearer(rest.to_string()));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        // Clients differ on padding (Go's Flight client sends none).
        let lenient = GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
        );
        let decoded = lenient
            .decode(rest)
            .map_err(|_| Error::invalid("the basic credentials are not valid base64"))?;
        let decoded = String::from_utf8(decoded)
            .map_err(|_| Error::invalid("the basic credentials are not valid UTF-8"))?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or_else(|| Error::invalid("the basic credentials hold no `user:password`"))?;
        return Ok(Credentials::Basic {
            user: user.to_string(),
            password: password.to_string(),
        });
    }
    Err(Error::invalid(format!(
        "unsupported authorization scheme `{scheme}`; use Basic (handshake) or Bearer"
    )))
}

/// A fresh random session token: 32 bytes, hex.
pub fn new_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    #[test]
    fn hashed_and_plain_users() {
        let hash = hash_password("s3cret").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        let users = Users::parse(
            &format!("# comment\n\nalice:{hash}\nbob:plain:with:colons\n"),
            "users",
        )
        .unwrap();
        assert_eq!(users.len(), 2);
        assert!(users.verify("alice", "s3cret"));
        assert!(!users.verify("alice", "wrong"));
        assert!(users.verify("bob", "plain:with:colons"));
        assert!(!users.verify("bob", "plain"));
        assert!(!users.verify("carol", "s3cret"));
    }

    #[test]
    fn malformed_users_file() {
        let err = Users::parse("alice:x\nnocolon\n", "f").err().unwrap();
        assert!(err.to_string().contains("f, line 2"), "{err}");
        let err = Users::parse("alice:x\nalice:y\n", "f").err().unwrap();
        assert!(err.to_string().contains("twice"), "{err}");
        let err = Users::parse("alice:$argon2id$garbage\n", "f")
            .err()
            .unwrap();
        assert!(err.to_string().contains("malformed argon2"), "{err}");
        assert!(!err.to_string().contains("garbage"), "{err}");
        let err = Users::parse(":x\n", "f").err().unwrap();
        assert!(err.to_string().contains("empty"), "{err}");
    }

    #[test]
    fn debug_hides_secrets() {
        let users = Users::parse("alice:topsecret\n", "f").unwrap();
        let shown = format!("{users:?}");
        assert!(
            shown.contains("alice") && !shown.contains("topsecret"),
            "{shown}"
        );
    }

    #[test]
    fn authorization_headers() {
        let basic = format!("Basic {}", STANDARD.encode("alice:pa:ss"));
        assert_eq!(
            parse_authorization(&basic).unwrap(),
            Credentials::Basic {
                user: "alice".into(),
                password: "pa:ss".into()
            }
        );
        // Without padding, as Go clients send it.
        let unpadded = format!("Basic {}", STANDARD.encode("ab:c").trim_end_matches('='));
        assert_eq!(
            parse_authorization(&unpadded).unwrap(),
            Credentials::Basic {
                user: "ab".into(),
                password: "c".into()
            }
        );
        assert_eq!(
            parse_authorization("Bearer abc").unwrap(),
            Credentials::Bearer("abc".into())
        );
        assert!(parse_authorization("Bearer ").is_err());
        assert!(parse_authorization("Basic !!!").is_err());
        assert!(parse_authorization("Digest x").is_err());
    }

    #[test]
    fn tokens_are_random_hex() {
        let a = new_token();
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, new_token());
    }
}
