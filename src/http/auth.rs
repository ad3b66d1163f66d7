//! Bearer-token authentication for `/v1`: the token file, the scope a request needs,
//! and the middleware that checks both.
//!
//! The scope follows from the route, never from the handler, so a route added later is
//! covered without anyone remembering to annotate it: `/v1/admin/…` needs `admin`,
//! other `GET`/`HEAD` requests need `read`, and every other method needs `ingest`.
//! `/healthz`, `/readyz` and `/metrics` stay open (probes and scrapers carry no token).
//!
//! Tokens are compared in constant time (over SHA-256 digests, so neither the content
//! nor the length of a configured token leaks through timing), and never logged: the
//! token file's entries print as `***`, and the request trace does not record headers.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use toml::Spanned;

use super::AppState;
use crate::config_file;
use crate::error::ApiError;

/// Configured tokens shorter than this are refused: a guessable token is no protection.
pub const MIN_TOKEN_CHARS: usize = 16;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Submit events: every non-GET/HEAD method outside `/v1/admin/`.
    Ingest,
    /// Read state, trails and the feed: `GET`/`HEAD` outside `/v1/admin/`.
    Read,
    /// Everything under `/v1/admin/`.
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    /// The scope a request needs, or `None` for the open endpoints outside `/v1`.
    pub fn required(method: &Method, path: &str) -> Option<Scope> {
        if path != "/v1" && !path.starts_with("/v1/") {
            return None;
        }
        if path == "/v1/admin" || path.starts_with("/v1/admin/") {
            Some(Scope::Admin)
        } else if method == Method::GET || method == Method::HEAD {
            Some(Scope::Read)
        } else {
            Some(Scope::Ingest)
        }
    }
}

/// One configured sender.
struct Token {
    name: String,
    digest: [u8; 32],
    scopes: HashSet<Scope>,
}

/// The configured tokens; with none, authentication is off.
#[derive(Default)]
pub struct Auth {
    tokens: Vec<Token>,
}

impl fmt::Debug for Auth {
    // Never the tokens, not even their digests: only who is configured with what.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for token in &self.tokens {
            let mut scopes: Vec<&str> = token.scopes.iter().map(|s| s.as_str()).collect();
            scopes.sort_unstable();
            list.entry(&format_args!(
                "{} (token ***, scopes {})",
                token.name,
                scopes.join(",")
            ));
        }
        list.finish()
    }
}

/// Who a request authenticated as; put into the request's extensions for handlers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sender(pub String);

#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}: {reason}")]
pub struct AuthConfigError {
    pub path: PathBuf,
    /// 1-based line of the offending entry or value (1 when the file cannot be read).
    pub line: usize,
    pub reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    tokens: Vec<Spanned<TokenEntry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: Spanned<String>,
    token: Option<Spanned<String>>,
    token_env: Option<Spanned<String>>,
    scopes: Spanned<Vec<Scope>>,
}

/// Bearer tokens are `token68` (RFC 6750): what fits in the header unquoted.
fn is_token68(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~+/".contains(c))
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Auth {
    /// No tokens: every request passes (the server then listens on loopback only).
    pub fn disabled() -> Self {
        Self::default()
    }

    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    pub fn names(&self) -> Vec<&str> {
        self.tokens.iter().map(|t| t.name.as_str()).collect()
    }

    /// Read a token file. `env` resolves `token_env` (the process environment in
    /// production, a map in tests).
    pub fn load(
        path: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, AuthConfigError> {
        let text = config_file::read(path).map_err(|error| AuthConfigError {
            path: path.to_path_buf(),
            line: error.line().unwrap_or(1),
            reason: match error.line() {
                Some(_) => error.to_string(),
                None => format!("cannot read the token file: {error}"),
            },
        })?;
        Self::parse(path, &text, env)
    }

    pub fn parse(
        path: &Path,
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, AuthConfigError> {
        let line_of = |offset: usize| config_file::line_at(text.as_bytes(), offset);
        let fail = |offset: usize, reason: String| AuthConfigError {
            path: path.to_path_buf(),
            line: line_of(offset),
            reason,
        };
        let file: FileConfig = toml::from_str(text).map_err(|error| {
            let offset = error.span().map(|span| span.start).unwrap_or(0);
            fail(offset, config_file::reason(&error))
        })?;
        if file.tokens.is_empty() {
            return Err(fail(
                0,
                "no [[tokens]] entries: remove the file from the configuration to run without authentication".into(),
            ));
        }
        let mut tokens: Vec<Token> = Vec::new();
        for entry in &file.tokens {
            let at = entry.span().start;
            let entry = entry.get_ref();
            let name = entry.name.get_ref();
            if name.trim().is_empty() || name.chars().any(char::is_control) {
                return Err(fail(
                    entry.name.span().start,
                    "name must be non-empty and without control characters".into(),
                ));
            }
            if tokens.iter().any(|t| t.name == *name) {
                return Err(fail(
                    entry.name.span().start,
                    format!("name {name:?} is used by an earlier entry"),
                ));
            }
            let token = match (&entry.token, &entry.token_env) {
                (Some(token), None) => (token.get_ref().clone(), token.span().start),
                (None, Some(var)) => match env(var.get_ref()) {
                    Some(value) if !value.is_empty() => (value, var.span().start),
                    _ => {
                        return Err(fail(
                            var.span().start,
                            format!(
                                "token_env names {:?}, which is not set or empty",
                                var.get_ref()
                            ),
                        ))
                    }
                },
                _ => {
                    return Err(fail(
                        at,
                        format!("entry {name:?} needs exactly one of token or token_env"),
                    ))
                }
            };
            let (token, token_at) = token;
            if token.chars().count() < MIN_TOKEN_CHARS {
                return Err(fail(
                    token_at,
                    format!("the token of {name:?} is shorter than {MIN_TOKEN_CHARS} characters"),
                ));
            }
            if !is_token68(&token) {
                return Err(fail(
                    token_at,
                    format!(
                        "the token of {name:?} may only hold letters, digits and - . _ ~ + / (then = at the end)"
                    ),
                ));
            }
            let scopes: HashSet<Scope> = entry.scopes.get_ref().iter().copied().collect();
            if scopes.is_empty() {
                return Err(fail(
                    entry.scopes.span().start,
                    format!("entry {name:?} has no scopes (ingest, read, admin)"),
                ));
            }
            let digest = digest(&token);
            if tokens.iter().any(|t| t.digest == digest) {
                return Err(fail(
                    token_at,
                    format!("the token of {name:?} is also the token of an earlier entry"),
                ));
            }
            tokens.push(Token {
                name: name.clone(),
                digest,
                scopes,
            });
        }
        Ok(Self { tokens })
    }

    /// The configured token matching `presented`. Every configured token is compared,
    /// each in constant time, so the answer's timing says nothing about which was close.
    fn find(&self, presented: &str) -> Option<&Token> {
        let presented = digest(presented);
        let mut found = None;
        for token in &self.tokens {
            if bool::from(token.digest.ct_eq(&presented)) {
                found = Some(token);
            }
        }
        found
    }

    /// Decide a request: `Ok(None)` when no token is needed, `Ok(Some(sender))` when
    /// the token holds the scope, else the 401 or 403 to answer.
    pub fn check(
        &self,
        method: &Method,
        path: &str,
        authorization: Option<&str>,
    ) -> Result<Option<Sender>, ApiError> {
        if !self.enabled() {
            return Ok(None);
        }
        let Some(scope) = Scope::required(method, path) else {
            return Ok(None);
        };
        let Some(authorization) = authorization else {
            return Err(ApiError::Unauthorized {
                detail: "this endpoint needs a bearer token (Authorization: Bearer <token>)".into(),
                invalid_token: false,
            });
        };
        let presented = authorization
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        let Some(presented) = presented.filter(|t| !t.is_empty()) else {
            return Err(ApiError::Unauthorized {
                detail: "the Authorization header must be `Bearer <token>`".into(),
                invalid_token: true,
            });
        };
        let Some(token) = self.find(presented) else {
            return Err(ApiError::Unauthorized {
                detail: "the bearer token is not valid".into(),
                invalid_token: true,
            });
        };
        if !token.scopes.contains(&scope) {
            return Err(ApiError::Forbidden {
                detail: format!(
                    "the token {:?} lacks the scope {} that {} {} needs",
                    token.name,
                    scope.as_str(),
                    method,
                    path
                ),
                scope: scope.as_str(),
            });
        }
        Ok(Some(Sender(token.name.clone())))
    }
}

/// The middleware: applied to the whole router, so no route can forget it.
pub async fn require_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|value| value.to_str().unwrap_or(""));
    match state
        .auth
        .check(request.method(), request.uri().path(), authorization)
    {
        Ok(sender) => {
            if let Some(sender) = sender {
                tracing::debug!(sender = %sender.0, "authenticated");
                request.extensions_mut().insert(sender);
            }
            next.run(request).await
        }
        Err(error) => {
            // The reason, never the header's content.
            tracing::info!(method = %request.method(), path = request.uri().path(), status = error.status().as_u16(), "request refused: {error}");
            error.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Auth, AuthConfigError> {
        Auth::parse(Path::new("tokens.toml"), text, |name| {
            (name == "AM_TOKEN").then(|| "from-the-environment-0123".to_string())
        })
    }

    fn error(text: &str) -> String {
        parse(text).err().map(|e| e.to_string()).unwrap_or_default()
    }

    const GOOD: &str = r#"
[[tokens]]
name = "alertmanager"
token_env = "AM_TOKEN"
scopes = ["ingest"]

[[tokens]]
name = "ops"
token = "ops-token-0123456789"
scopes = ["read", "admin"]
"#;

    #[test]
    fn a_good_file_loads_and_debug_hides_the_tokens() {
        let auth = parse(GOOD).expect("valid");
        assert_eq!(auth.names(), ["alertmanager", "ops"]);
        let shown = format!("{auth:?}");
        assert_eq!(
            shown,
            "[alertmanager (token ***, scopes ingest), ops (token ***, scopes admin,read)]"
        );
        assert!(!shown.contains("ops-token") && !shown.contains("from-the-environment"));
    }

    #[test]
    fn bad_files_are_refused_with_line_and_reason() {
        assert_eq!(
            error("[[tokens]]\nname = \"a\"\ntoken = \"short\"\nscopes = [\"ingest\"]\n"),
            "tokens.toml:3: the token of \"a\" is shorter than 16 characters"
        );
        assert_eq!(
            error("[[tokens]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nscopes = [\"write\"]\n"),
            "tokens.toml:4: unknown variant, expected one of `ingest`, `read`, `admin`"
        );
        // A token written where another value belongs is not repeated in the refusal.
        assert_eq!(
            error(
                "[[tokens]]\nname = \"a\"\ntoken_env = \"A\"\nscopes = \"TOKSECRET-0123456789\"\n"
            ),
            "tokens.toml:4: invalid type: a string, expected a sequence"
        );
        assert_eq!(
            error("[[tokens]]\nname = \"a\"\ntoken_env = \"A\"\nscopes = [\"TOKSECRET-0123456789\"]\n"),
            "tokens.toml:4: unknown variant, expected one of `ingest`, `read`, `admin`"
        );
        assert_eq!(
            error("[[tokens]]\nname = \"a\"\ntoken_env = \"UNSET\"\nscopes = [\"read\"]\n"),
            "tokens.toml:3: token_env names \"UNSET\", which is not set or empty"
        );
        assert_eq!(
            error("\n[[tokens]]\nname = \"a\"\nscopes = [\"read\"]\n"),
            "tokens.toml:2: entry \"a\" needs exactly one of token or token_env"
        );
        assert_eq!(
            error("[[tokens]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nscopes = [\"read\"]\n[[tokens]]\nname = \"a\"\ntoken = \"0123456789abcdefg\"\nscopes = [\"read\"]\n"),
            "tokens.toml:6: name \"a\" is used by an earlier entry"
        );
        assert_eq!(
            error("[[tokens]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\nscopes = []\n"),
            "tokens.toml:4: entry \"a\" has no scopes (ingest, read, admin)"
        );
        assert_eq!(
            error("[[tokens]]\nname = \"a\"\ntoken = \"0123456789 abcdef\"\nscopes = [\"read\"]\n"),
            "tokens.toml:3: the token of \"a\" may only hold letters, digits and - . _ ~ + / (then = at the end)"
        );
        assert_eq!(
            error("[[tokens]]\nname = \"a\"\ntokn = \"x\"\n"),
            "tokens.toml:3: unknown field `tokn`, expected one of `name`, `token`, `token_env`, `scopes`"
        );
        assert_eq!(
            error("# nothing\n"),
            "tokens.toml:1: no [[tokens]] entries: remove the file from the configuration to run without authentication"
        );
        assert_eq!(
            error("[[tokens]\n"),
            "tokens.toml:1: invalid table header; expected `.`, `]]`"
        );
    }

    #[test]
    fn scopes_follow_the_route() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(Scope::required(&get, "/healthz"), None);
        assert_eq!(Scope::required(&get, "/metrics"), None);
        assert_eq!(Scope::required(&get, "/v1x"), None);
        assert_eq!(Scope::required(&get, "/v1/alerts"), Some(Scope::Read));
        assert_eq!(
            Scope::required(&Method::HEAD, "/v1/alerts"),
            Some(Scope::Read)
        );
        assert_eq!(Scope::required(&post, "/v1/events"), Some(Scope::Ingest));
        assert_eq!(
            Scope::required(&post, "/v1/devices/d/alerts/k/ack"),
            Some(Scope::Ingest)
        );
        assert_eq!(
            Scope::required(&get, "/v1/admin/rebuild"),
            Some(Scope::Admin)
        );
        assert_eq!(
            Scope::required(&post, "/v1/admin/rebuild"),
            Some(Scope::Admin)
        );
    }

    #[test]
    fn tokens_are_checked_by_scope() {
        let auth = parse(GOOD).expect("valid");
        let ok = |m: &Method, p: &str, h: Option<&str>| {
            auth.check(m, p, h).map_err(|e| e.status().as_u16())
        };
        assert_eq!(ok(&Method::GET, "/v1/alerts", None), Err(401));
        assert_eq!(ok(&Method::GET, "/v1/alerts", Some("Basic abc")), Err(401));
        assert_eq!(
            ok(
                &Method::GET,
                "/v1/alerts",
                Some("Bearer nope-nope-nope-nope")
            ),
            Err(401)
        );
        assert_eq!(
            ok(
                &Method::GET,
                "/v1/alerts",
                Some("Bearer from-the-environment-0123")
            ),
            Err(403)
        );
        assert_eq!(
            ok(
                &Method::POST,
                "/v1/events",
                Some("bearer from-the-environment-0123")
            ),
            Ok(Some(Sender("alertmanager".into())))
        );
        assert_eq!(
            ok(
                &Method::GET,
                "/v1/admin/rebuild",
                Some("Bearer ops-token-0123456789")
            ),
            Ok(Some(Sender("ops".into())))
        );
        assert_eq!(ok(&Method::GET, "/healthz", None), Ok(None));
        assert_eq!(
            Auth::disabled()
                .check(&Method::POST, "/v1/events", None)
                .ok(),
            Some(None)
        );
    }
}
