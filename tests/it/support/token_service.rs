//! A provider's OAuth2 token endpoint on loopback, in process: what
//! Microsoft's identity platform and Google's token service do for the
//! grants klachtd uses, issuing access tokens the test Dovecot accepts
//! (JWTs under the stack's HS256 key, [`sign_oauth2_token`]).
//!
//! * `POST /token`, form-encoded (RFC 6749), grants:
//!   - `client_credentials`: client id and secret, in the form
//!     (`client_secret_post`) or as HTTP Basic (`client_secret_basic`);
//!   - `refresh_token`: the one valid refresh token, rotated on every use
//!     (the old one stops working, like Microsoft's); a secret is optional
//!     (public clients have none) but must be right when given;
//!   - `urn:ietf:params:oauth:grant-type:jwt-bearer` (RFC 7523, Google's
//!     service account): an RS256 assertion checked against the configured
//!     public key and claims;
//!   - `urn:ietf:params:oauth:grant-type:device_code` (RFC 8628): polls of
//!     a code from `/devicecode`, `authorization_pending` a configured
//!     number of times, then the token and a new refresh token.
//! * `POST /devicecode`: starts a device-code sign-in (Microsoft's shape).
//!
//! Errors are JSON `{"error": …, "error_description": …}` with the
//! provider's status and wording (AADSTS codes for Microsoft's). Every
//! response closes its connection. Only `std` and a plain thread: it needs
//! no runtime, and stops when the [`TokenService`] is dropped.
//!
//! ```ignore
//! let svc = TokenService::start(TokenServiceConfig::new(&user, &stack.oauth2_key));
//! let secret = svc.config().client_secret.clone();
//! // … point klachtd at svc.token_url() with client "klachtd-test" / secret …
//! ```

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::mailstack::sign_oauth2_token;

/// The test service account's private key (PKCS#8 PEM,
/// tests/fixtures/oauth2): signs jwt-bearer assertions in tests.
pub const SERVICE_ACCOUNT_PRIVATE_KEY_PEM: &str =
    include_str!("../../fixtures/oauth2/service-account-key.pem");

/// Its public key (SubjectPublicKeyInfo PEM), for
/// [`TokenServiceConfig::service_account`].
pub const SERVICE_ACCOUNT_PUBLIC_KEY_PEM: &str =
    include_str!("../../fixtures/oauth2/service-account-key.pub.pem");

/// The `grant_type` of Google's service-account grant (RFC 7523).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The `grant_type` of the device-code grant's polls (RFC 8628).
pub const DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// How long a device code lives (`expires_in` of `/devicecode`), seconds.
const DEVICE_CODE_LIFETIME: u64 = 300;

/// A connection that sends nothing for this long is dropped.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Requests bigger than this are refused (no real token request comes near).
const MAX_BODY: usize = 1 << 20;

/// What a [`TokenService`] accepts and issues. Start from
/// [`TokenServiceConfig::new`] and change fields as a test needs.
#[derive(Debug, Clone)]
pub struct TokenServiceConfig {
    /// The one client (application) id the service knows.
    pub client_id: String,
    /// That client's secret.
    pub client_secret: String,
    /// The mailbox the issued tokens are for (JWT sub/email).
    pub mailbox: String,
    /// Lifetime of every access token issued, seconds (also `expires_in`).
    /// Negative gives tokens that have expired, and a negative `expires_in`
    /// that a strict client may refuse to parse.
    pub lifetime_secs: i64,
    /// The stack's HS256 key, base64 (MailStack::oauth2_key).
    pub signing_key_b64: String,
    /// A refresh token the service accepts at the start (None: none).
    pub refresh_token: Option<String>,
    /// Google service account: its email and the PEM of its public key;
    /// jwt-bearer assertions are checked against them.
    pub service_account: Option<(String, Vec<u8>)>,
    /// Polls of the device-code grant answered `authorization_pending`
    /// before the token is given.
    pub device_pending_polls: usize,
}

impl TokenServiceConfig {
    /// Client `klachtd-test` with a fresh random secret, tokens for
    /// `mailbox` signed with `signing_key_b64` and valid 60 seconds; no
    /// refresh token, no service account; two `authorization_pending`
    /// polls per device code.
    pub fn new(mailbox: &str, signing_key_b64: &str) -> Self {
        TokenServiceConfig {
            client_id: "klachtd-test".to_string(),
            client_secret: format!("secret-{}", random_hex()),
            mailbox: mailbox.to_string(),
            lifetime_secs: 60,
            signing_key_b64: signing_key_b64.to_string(),
            refresh_token: None,
            service_account: None,
            device_pending_polls: 2,
        }
    }
}

/// The running token endpoint: a listener on 127.0.0.1 served by a
/// background thread (a thread per connection), stopped on drop.
pub struct TokenService {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

/// What the threads share with the handle.
struct Shared {
    config: TokenServiceConfig,
    /// `http://127.0.0.1:PORT`.
    base: String,
    /// Set on drop: the accept loop ends at its next connection.
    stop: AtomicBool,
    /// [`TokenService::set_down`].
    down: AtomicBool,
    state: Mutex<State>,
}

/// What the service has seen and handed out.
#[derive(Default)]
struct State {
    /// Requests per `grant_type` (`/devicecode` posts under "devicecode").
    requests: HashMap<String, usize>,
    issued: usize,
    scopes: Vec<String>,
    /// The one refresh token that works now.
    refresh_token: Option<String>,
    /// Device codes handed out by `/devicecode`.
    devices: HashMap<String, Device>,
    /// [`TokenService::revoke_next`]: tokens still to hand out revoked.
    revoked: usize,
}

/// One device-code sign-in (of the one client there is).
struct Device {
    scope: String,
    started: Instant,
    /// Polls answered so far.
    polls: usize,
    /// The token was given: the code is spent.
    used: bool,
}

/// A response: status and JSON body.
type Reply = (u16, Value);

impl TokenService {
    /// Binds 127.0.0.1 on a free port and serves `config` until dropped.
    pub fn start(config: TokenServiceConfig) -> TokenService {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the token service");
        let addr = listener.local_addr().expect("token service address");
        let state = State {
            refresh_token: config.refresh_token.clone(),
            ..State::default()
        };
        let shared = Arc::new(Shared {
            config,
            base: format!("http://{addr}"),
            stop: AtomicBool::new(false),
            down: AtomicBool::new(false),
            state: Mutex::new(state),
        });
        let accept = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("token-service".to_string())
                .spawn(move || accept_loop(listener, shared))
                .expect("spawn the token service")
        };
        TokenService {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// What the service was started with.
    pub fn config(&self) -> &TokenServiceConfig {
        &self.shared.config
    }

    /// The token endpoint: `http://127.0.0.1:PORT/token`.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.shared.base)
    }

    /// The device authorization endpoint: `http://127.0.0.1:PORT/devicecode`.
    pub fn device_url(&self) -> String {
        format!("{}/devicecode", self.shared.base)
    }

    /// Requests seen per grant_type (the form's value, e.g. "client_credentials",
    /// "refresh_token", "urn:ietf:params:oauth:grant-type:jwt-bearer",
    /// "urn:ietf:params:oauth:grant-type:device_code"), successful or not.
    /// Also those answered 503 while [down](Self::set_down); posts to
    /// [`device_url`](Self::device_url) count as "devicecode".
    pub fn requests(&self, grant_type: &str) -> usize {
        self.shared
            .lock()
            .requests
            .get(grant_type)
            .copied()
            .unwrap_or(0)
    }

    /// Access tokens issued so far (successful token responses).
    pub fn issued(&self) -> usize {
        self.shared.lock().issued
    }

    /// Every `scope` value received, in order: the form's (token and device
    /// requests) and the `scope` claim of jwt-bearer assertions.
    pub fn scopes(&self) -> Vec<String> {
        self.shared.lock().scopes.clone()
    }

    /// The refresh token currently valid (rotated on every refresh grant and
    /// issued by the device grant), if any.
    pub fn current_refresh_token(&self) -> Option<String> {
        self.shared.lock().refresh_token.clone()
    }

    /// The next `n` tokens are refused by the servers (revoked right after
    /// they were issued), as a provider's can be.
    pub fn revoke_next(&self, n: usize) {
        self.shared.state.lock().unwrap().revoked = n;
    }

    /// While true, every request is answered 503 (a provider outage).
    /// Such requests still count in [`requests`](Self::requests).
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }
}

impl Drop for TokenService {
    /// Stops the accept loop: sets the flag, then wakes `accept()` with a
    /// connection of our own. Connections being served finish by themselves.
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

impl Shared {
    /// The state, also after a panic of another connection's thread.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        match conn {
            Ok(stream) => {
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || serve(stream, &shared));
            }
            // E.g. out of file descriptors: don't spin.
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

// ---------------------------------------------------------------------------
// HTTP/1.1, as much as a token client needs

/// One request: method, path (without query) and headers (names lower-cased).
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Serves one connection: one request, one response, close.
fn serve(mut stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let (status, body) = match read_request(&mut stream) {
        Ok(req) => respond(shared, &req),
        // Our own wake-up connection on drop, or a client that gave up.
        Err(None) => return,
        Err(Some(why)) => oauth_error(400, "invalid_request", &why),
    };
    let body = body.to_string();
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json; charset=utf-8\r\n\
         Content-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        reason(status),
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body.as_bytes());
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Write);
}

/// Reads the request line, headers and body (Content-Length or chunked),
/// answering `Expect: 100-continue` first. `Err(None)`: the peer closed
/// before sending anything; `Err(Some(why))`: a malformed request.
fn read_request(stream: &mut TcpStream) -> Result<Request, Option<String>> {
    let mut r = BufReader::new(stream.try_clone().map_err(|e| Some(e.to_string()))?);
    let mut line = String::new();
    match r.read_line(&mut line) {
        Ok(0) | Err(_) => return Err(None),
        Ok(_) => {}
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(Some(format!("bad request line {line:?}")));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(Some(format!("unsupported version {version}")));
    }
    let path = target.split('?').next().unwrap_or("").to_string();
    let method = method.to_string();

    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).map_err(|e| Some(e.to_string()))? == 0 {
            return Err(Some("connection closed in the headers".to_string()));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(Some(format!("bad header line {line:?}")));
        };
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        if headers.len() > 100 {
            return Err(Some("too many headers".to_string()));
        }
    }
    let mut req = Request {
        method,
        path,
        headers,
        body: Vec::new(),
    };

    if req
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        let _ = stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    let chunked = req
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        req.body = read_chunked(&mut r)?;
    } else if let Some(len) = req.header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| Some(format!("bad Content-Length {len:?}")))?;
        if len > MAX_BODY {
            return Err(Some("request body too large".to_string()));
        }
        req.body = vec![0; len];
        r.read_exact(&mut req.body)
            .map_err(|e| Some(format!("reading the body: {e}")))?;
    }
    Ok(req)
}

/// A chunked body (RFC 9112 7.1): hex size lines, data, a last chunk of 0,
/// trailers up to an empty line.
fn read_chunked(r: &mut impl BufRead) -> Result<Vec<u8>, Option<String>> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).map_err(|e| Some(e.to_string()))?;
        let size = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| Some(format!("bad chunk size {line:?}")))?;
        if size == 0 {
            break;
        }
        if body.len() + size > MAX_BODY {
            return Err(Some("request body too large".to_string()));
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])
            .map_err(|e| Some(e.to_string()))?;
        let mut crlf = String::new();
        r.read_line(&mut crlf).map_err(|e| Some(e.to_string()))?;
    }
    // Trailers, if any, up to the empty line.
    loop {
        let mut line = String::new();
        let n = r.read_line(&mut line).map_err(|e| Some(e.to_string()))?;
        if n == 0 || line.trim().is_empty() {
            return Ok(body);
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

// ---------------------------------------------------------------------------
// The endpoints

/// A form's fields, first value of each name.
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &[u8]) -> Form {
        Form(form_urlencoded::parse(body).into_owned().collect())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Routes a request, after counting it and noting its scope.
fn respond(shared: &Shared, req: &Request) -> Reply {
    let form = Form::parse(&req.body);
    let mut state = shared.lock();
    let counted = match req.path.as_str() {
        "/token" => Some(form.get("grant_type").unwrap_or("")),
        "/devicecode" => Some("devicecode"),
        _ => None,
    };
    if let Some(key) = counted {
        *state.requests.entry(key.to_string()).or_default() += 1;
        if let Some(scope) = form.get("scope") {
            state.scopes.push(scope.to_string());
        }
    }
    if shared.down.load(Ordering::SeqCst) {
        return oauth_error(
            503,
            "temporarily_unavailable",
            "The service is temporarily unavailable (test outage).",
        );
    }
    match (req.method.as_str(), req.path.as_str()) {
        ("POST", "/token") => token(shared, &mut state, req, &form),
        ("POST", "/devicecode") => device_authorization(shared, &mut state, req, &form),
        (_, "/token" | "/devicecode") => oauth_error(
            405,
            "invalid_request",
            "The request must be a POST with a form body.",
        ),
        _ => (404, json!({"error": "not_found"})),
    }
}

/// `POST /token`: dispatch on `grant_type`.
fn token(shared: &Shared, state: &mut State, req: &Request, form: &Form) -> Reply {
    match form.get("grant_type") {
        Some("client_credentials") => client_credentials(shared, state, req, form),
        Some("refresh_token") => refresh(shared, state, req, form),
        Some(JWT_BEARER) => jwt_bearer(shared, state, form),
        Some(DEVICE_CODE) => device_poll(shared, state, req, form),
        Some(other) => oauth_error(
            400,
            "unsupported_grant_type",
            &format!("AADSTS70003: The app requested an unsupported grant type '{other}'."),
        ),
        None => oauth_error(
            400,
            "invalid_request",
            "AADSTS900144: The request body must contain the following parameter: 'grant_type'.",
        ),
    }
}

/// Client credentials grant: the client must authenticate with its secret.
fn client_credentials(shared: &Shared, state: &mut State, req: &Request, form: &Form) -> Reply {
    if let Err(reply) = check_client(&shared.config, req, form, true) {
        return reply;
    }
    (200, Value::Object(issue(shared, state)))
}

/// Refresh token grant: the current refresh token, swapped for a new one.
fn refresh(shared: &Shared, state: &mut State, req: &Request, form: &Form) -> Reply {
    if let Err(reply) = check_client(&shared.config, req, form, false) {
        return reply;
    }
    let Some(given) = form.get("refresh_token") else {
        return missing("refresh_token");
    };
    if state.refresh_token.as_deref() != Some(given) {
        return oauth_error(
            400,
            "invalid_grant",
            "AADSTS70008: The provided authorization code or refresh token has expired due to \
             inactivity. Send a new interactive authorization request for this user and resource.",
        );
    }
    let mut body = issue(shared, state);
    let next = format!("rt-{}", random_hex());
    state.refresh_token = Some(next.clone());
    body.insert("refresh_token".into(), next.into());
    if let Some(scope) = form.get("scope") {
        body.insert("scope".into(), scope.into());
    }
    (200, Value::Object(body))
}

/// Google's service-account grant: an RS256 assertion of the configured
/// account, for the configured mailbox, addressed to this endpoint.
fn jwt_bearer(shared: &Shared, state: &mut State, form: &Form) -> Reply {
    let config = &shared.config;
    let Some(assertion) = form.get("assertion") else {
        return missing("assertion");
    };
    let Some((email, public_pem)) = &config.service_account else {
        return oauth_error(400, "invalid_grant", "Invalid grant: account not found");
    };
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(public_pem)
        .expect("the service account's public key is an RSA PEM");
    // Signature only; the claims are checked below, each with its error.
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = match jsonwebtoken::decode::<Value>(assertion, &key, &validation) {
        Ok(data) => data.claims,
        Err(e) => {
            let why = match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    "Invalid JWT Signature.".to_string()
                }
                _ => format!("Invalid JWT: {e}"),
            };
            return oauth_error(400, "invalid_grant", &why);
        }
    };
    let claim = |name: &str| claims.get(name).and_then(Value::as_str);
    if let Some(scope) = claim("scope") {
        state.scopes.push(scope.to_string());
    }

    if claim("iss") != Some(email.as_str()) {
        return oauth_error(400, "invalid_grant", "Invalid grant: account not found");
    }
    if claim("aud") != Some(format!("{}/token", shared.base).as_str()) {
        return oauth_error(400, "invalid_grant", "Invalid JWT: Failed audience check.");
    }
    let now = unix_now();
    let (iat, exp) = (claims.get("iat"), claims.get("exp"));
    let (Some(iat), Some(exp)) = (iat.and_then(Value::as_i64), exp.and_then(Value::as_i64)) else {
        return oauth_error(
            400,
            "invalid_grant",
            "Invalid JWT: Token must have numeric iat and exp claims.",
        );
    };
    if exp <= now || exp - iat > 3600 {
        return oauth_error(
            400,
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable \
             timeframe. Check your iat and exp values in the JWT claim.",
        );
    }
    if claim("scope").is_none_or(|s| s.trim().is_empty()) {
        return oauth_error(400, "invalid_grant", "Invalid JWT: no scope claim.");
    }
    if claim("sub") != Some(config.mailbox.as_str()) {
        return oauth_error(
            400,
            "unauthorized_client",
            "Client is unauthorized to retrieve access tokens using this method, or client not \
             authorized for any of the scopes requested.",
        );
    }
    (200, Value::Object(issue(shared, state)))
}

/// `POST /devicecode`: a new device code for the client and scope.
fn device_authorization(shared: &Shared, state: &mut State, req: &Request, form: &Form) -> Reply {
    if let Err(reply) = check_client(&shared.config, req, form, false) {
        return reply;
    }
    let Some(scope) = form.get("scope") else {
        return missing("scope");
    };
    let device_code = format!("dc-{}", random_hex());
    let user_code: String = {
        const LETTERS: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
        let n = random_u64();
        let letters: Vec<char> = (0..8)
            .map(|i| LETTERS[(n >> (i * 5)) as usize % LETTERS.len()] as char)
            .collect();
        format!(
            "{}-{}",
            letters[..4].iter().collect::<String>(),
            letters[4..].iter().collect::<String>()
        )
    };
    state.devices.insert(
        device_code.clone(),
        Device {
            scope: scope.to_string(),
            started: Instant::now(),
            polls: 0,
            used: false,
        },
    );
    let uri = format!("{}/device", shared.base);
    (
        200,
        json!({
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": uri,
            "expires_in": DEVICE_CODE_LIFETIME,
            "interval": 1,
            "message": format!("To sign in, open {uri} and enter the code {user_code}."),
        }),
    )
}

/// A poll of the device-code grant: pending a few times, then the token.
fn device_poll(shared: &Shared, state: &mut State, req: &Request, form: &Form) -> Reply {
    if let Err(reply) = check_client(&shared.config, req, form, false) {
        return reply;
    }
    let Some(code) = form.get("device_code") else {
        return missing("device_code");
    };
    let pending_polls = shared.config.device_pending_polls;
    let Some(device) = state.devices.get_mut(code) else {
        return oauth_error(
            400,
            "invalid_grant",
            "AADSTS70000: The provided value for the 'device_code' is not valid.",
        );
    };
    if device.used || device.started.elapsed() > Duration::from_secs(DEVICE_CODE_LIFETIME) {
        return oauth_error(
            400,
            "expired_token",
            "AADSTS70020: The provided value for the input parameter 'device_code' is not valid. \
             This device code has expired.",
        );
    }
    if device.polls < pending_polls {
        device.polls += 1;
        return oauth_error(
            400,
            "authorization_pending",
            "AADSTS70016: OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
        );
    }
    device.used = true;
    let scope = device.scope.clone();
    let mut body = issue(shared, state);
    let refresh = format!("rt-{}", random_hex());
    state.refresh_token = Some(refresh.clone());
    body.insert("refresh_token".into(), refresh.into());
    body.insert("scope".into(), scope.into());
    (200, Value::Object(body))
}

/// A successful token response's fields (Microsoft's shape), counted in
/// `issued`; the caller adds `refresh_token` and `scope` where they apply.
fn issue(shared: &Shared, state: &mut State) -> Map<String, Value> {
    let config = &shared.config;
    state.issued += 1;
    // A revoked token: the servers know it no more (signed with a key they
    // do not have), though it claims to be good for the full lifetime.
    let key = if state.revoked > 0 {
        state.revoked -= 1;
        base64::engine::general_purpose::STANDARD.encode("revoked since")
    } else {
        config.signing_key_b64.clone()
    };
    let token = sign_oauth2_token(&key, &config.mailbox, config.lifetime_secs);
    let mut body = Map::new();
    body.insert("token_type".into(), "Bearer".into());
    body.insert("expires_in".into(), config.lifetime_secs.into());
    body.insert("ext_expires_in".into(), config.lifetime_secs.into());
    body.insert("access_token".into(), token.into());
    body
}

/// Client authentication: HTTP Basic (id and secret form-urlencoded, then
/// base64; RFC 6749 2.3.1) if the request has it, else `client_id` and
/// `client_secret` of the form. The id must be ours; the secret must be
/// right when given, and given when `secret_required`.
fn check_client(
    config: &TokenServiceConfig,
    req: &Request,
    form: &Form,
    secret_required: bool,
) -> Result<(), Reply> {
    let basic = req
        .header("authorization")
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, creds)| creds.trim());
    let (id, secret) = match basic {
        Some(creds) => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(creds)
                .ok()
                .and_then(|b| String::from_utf8(b).ok());
            let Some((id, secret)) = decoded.as_deref().and_then(|s| s.split_once(':')) else {
                return Err(oauth_error(
                    401,
                    "invalid_client",
                    "AADSTS7000216: Malformed HTTP Basic client credentials.",
                ));
            };
            (Some(percent_decode(id)), Some(percent_decode(secret)))
        }
        None => (
            form.get("client_id").map(str::to_string),
            form.get("client_secret").map(str::to_string),
        ),
    };
    let Some(id) = id else {
        return Err(missing("client_id"));
    };
    if id != config.client_id {
        return Err(oauth_error(
            400,
            "unauthorized_client",
            &format!(
                "AADSTS700016: Application with identifier '{id}' was not found in the directory \
                 'test'. This can happen if the application has not been installed by the \
                 administrator of the tenant or consented to by any user in the tenant. You may \
                 have sent your authentication request to the wrong tenant."
            ),
        ));
    }
    match secret {
        Some(secret) if secret != config.client_secret => Err(oauth_error(
            401,
            "invalid_client",
            &format!(
                "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in \
                 the request is the client secret value, not the client secret ID, for a secret \
                 added to app '{id}'."
            ),
        )),
        None if secret_required => Err(oauth_error(
            401,
            "invalid_client",
            "AADSTS7000218: The request body must contain the following parameter: \
             'client_assertion' or 'client_secret'.",
        )),
        _ => Ok(()),
    }
}

/// `application/x-www-form-urlencoded` decoding of one value: `+` is a
/// space, `%XX` a byte; anything malformed is kept as it is.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
                continue;
            }
            (b'+', _) => out.push(b' '),
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The 400 of a missing parameter, in Microsoft's words.
fn missing(name: &str) -> Reply {
    oauth_error(
        400,
        "invalid_request",
        &format!("AADSTS900144: The request body must contain the following parameter: '{name}'."),
    )
}

/// An OAuth2 error response (RFC 6749 5.2); a description starting with
/// an AADSTS code also gets Microsoft's `error_codes`.
fn oauth_error(status: u16, error: &str, description: &str) -> Reply {
    let mut body = json!({"error": error, "error_description": description});
    let code = description
        .strip_prefix("AADSTS")
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse::<u64>().ok());
    if let Some(code) = code {
        body["error_codes"] = json!([code]);
    }
    (status, body)
}

// ---------------------------------------------------------------------------
// Small helpers

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64
}

/// 64 unpredictable-enough bits for secrets and codes: std's randomly keyed
/// hasher over a counter and the time.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

/// 128 random bits as 32 hex digits.
fn random_hex() -> String {
    format!("{:016x}{:016x}", random_u64(), random_u64())
}

/// A Google-style service-account key file (the JSON a Google Cloud
/// console download gives) for `email`, with the fixture private key and
/// `token_uri`; klachtd reads `client_email`, `private_key`,
/// `private_key_id` and `token_uri` from it.
pub fn service_account_json(email: &str, token_uri: &str) -> String {
    let project = email
        .split_once('@')
        .and_then(|(_, domain)| domain.split('.').next())
        .unwrap_or("klachtd-test");
    let value = json!({
        "type": "service_account",
        "project_id": project,
        "private_key_id": "0b1d6f2e3c4a5b6978a1b2c3d4e5f60718293a4b",
        "private_key": SERVICE_ACCOUNT_PRIVATE_KEY_PEM,
        "client_email": email,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": format!(
            "https://www.googleapis.com/robot/v1/metadata/x509/{}",
            email.replace('@', "%40")
        ),
        "universe_domain": "googleapis.com",
    });
    serde_json::to_string_pretty(&value).expect("JSON") + "\n"
}

#[cfg(test)]
mod tests {
    //! The service over raw HTTP: no mail server needed.

    use super::*;

    /// A base64 HS256 key standing in for a stack's `oauth2_key`.
    const KEY_B64: &str = "dGVzdC1rZXktZm9yLXRoZS10b2tlbi1zZXJ2aWNlLXRlc3Rz";
    const MAILBOX: &str = "info@31solutions.test";
    const ACCOUNT: &str = "klachtd@klachtd-test.iam.gserviceaccount.test";

    /// Sends `request` (all of it, raw) to the service at `url`'s host and
    /// returns the whole answer as text.
    fn exchange(url: &str, request: &[u8]) -> String {
        let host = url
            .strip_prefix("http://")
            .and_then(|rest| rest.split('/').next())
            .expect("an http URL");
        let mut s = TcpStream::connect(host).expect("connect to the token service");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(request).unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        answer
    }

    /// POSTs `form` to `url` (with HTTP Basic `basic` if given, id and
    /// secret form-urlencoded first): status and JSON body.
    fn post(url: &str, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> (u16, Value) {
        let path = url
            .strip_prefix("http://")
            .and_then(|rest| rest.find('/').map(|i| &rest[i..]))
            .expect("an http URL");
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nConnection: keep-alive\r\n",
            body.len()
        );
        if let Some((id, secret)) = basic {
            let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let creds = base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                enc(id),
                enc(secret)
            ));
            head += &format!("Authorization: Basic {creds}\r\n");
        }
        let answer = exchange(url, format!("{head}\r\n{body}").as_bytes());
        parse_answer(&answer)
    }

    /// Status and JSON body of a response (after any `100 Continue`).
    fn parse_answer(answer: &str) -> (u16, Value) {
        let answer = answer
            .strip_prefix("HTTP/1.1 100 Continue\r\n\r\n")
            .unwrap_or(answer);
        let (head, body) = answer.split_once("\r\n\r\n").expect("a full response");
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        assert!(head.contains("Content-Type: application/json"), "{head}");
        assert!(head.contains("Connection: close"), "{head}");
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{head}"
        );
        (status, serde_json::from_str(body).expect("a JSON body"))
    }

    fn config() -> TokenServiceConfig {
        TokenServiceConfig::new(MAILBOX, KEY_B64)
    }

    /// The claims of an access token, checked with the HS256 key.
    fn access_claims(token: &str) -> Value {
        let key = jsonwebtoken::DecodingKey::from_base64_secret(KEY_B64).unwrap();
        let validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        jsonwebtoken::decode::<Value>(token, &key, &validation)
            .expect("an access token signed with the key")
            .claims
    }

    /// An assertion of the test service account, signed with the fixture key.
    fn assertion(claims: &Value) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            claims,
            &jsonwebtoken::EncodingKey::from_rsa_pem(SERVICE_ACCOUNT_PRIVATE_KEY_PEM.as_bytes())
                .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn client_credentials_in_the_form() {
        let svc = TokenService::start(config());
        let (id, secret) = (
            svc.config().client_id.clone(),
            svc.config().client_secret.clone(),
        );
        assert_eq!(id, "klachtd-test");
        let scope = "https://outlook.office365.com/.default";

        let (status, body) = post(
            &svc.token_url(),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
                ("scope", scope),
            ],
            None,
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 60);
        assert_eq!(body["ext_expires_in"], 60);
        assert!(body.get("refresh_token").is_none(), "{body}");
        let claims = access_claims(body["access_token"].as_str().unwrap());
        assert_eq!(claims["sub"], MAILBOX);
        assert_eq!(claims["email"], MAILBOX);

        let (status, body) = post(
            &svc.token_url(),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", "not-the-secret"),
                ("scope", scope),
            ],
            None,
        );
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"], "invalid_client");
        let why = body["error_description"].as_str().unwrap();
        assert!(why.starts_with("AADSTS7000215:"), "{why}");
        assert!(why.contains("'klachtd-test'"), "{why}");

        let (status, body) = post(
            &svc.token_url(),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "someone-else"),
                ("client_secret", &secret),
            ],
            None,
        );
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"], "unauthorized_client");
        let why = body["error_description"].as_str().unwrap();
        assert!(why.starts_with("AADSTS700016:"), "{why}");
        assert!(why.contains("'someone-else'"), "{why}");
        assert_eq!(body["error_codes"][0], 700016);

        // No secret at all: Microsoft's AADSTS7000218.
        let (status, body) = post(
            &svc.token_url(),
            &[("grant_type", "client_credentials"), ("client_id", &id)],
            None,
        );
        assert_eq!((status, &body["error"]), (401, &json!("invalid_client")));

        assert_eq!(svc.requests("client_credentials"), 4);
        assert_eq!(svc.requests("refresh_token"), 0);
        assert_eq!(svc.issued(), 1);
        assert_eq!(svc.scopes(), vec![scope, scope]);
    }

    #[test]
    fn client_credentials_with_http_basic() {
        let mut config = config();
        // Characters that RFC 6749 2.3.1's form-urlencoding changes.
        config.client_secret = "s3:cr&t +/=%é".to_string();
        let svc = TokenService::start(config);
        let form = [("grant_type", "client_credentials"), ("scope", "s")];

        let (status, body) = post(
            &svc.token_url(),
            &form,
            Some(("klachtd-test", "s3:cr&t +/=%é")),
        );
        assert_eq!(status, 200, "{body}");
        assert!(body["access_token"].is_string());

        let (status, body) = post(&svc.token_url(), &form, Some(("klachtd-test", "s3:cr&t")));
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"], "invalid_client");

        let (status, body) = post(&svc.token_url(), &form, Some(("other", "s3:cr&t +/=%é")));
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"], "unauthorized_client");
        assert_eq!(svc.issued(), 1);
    }

    #[test]
    fn refresh_tokens_rotate() {
        let mut config = config();
        config.refresh_token = Some("rt-initial".to_string());
        let svc = TokenService::start(config);
        let secret = svc.config().client_secret.clone();
        let refresh = |token: &str, secret: Option<&str>| {
            let mut form = vec![
                ("grant_type", "refresh_token"),
                ("client_id", "klachtd-test"),
                ("refresh_token", token),
            ];
            if let Some(secret) = secret {
                form.push(("client_secret", secret));
            }
            post(&svc.token_url(), &form, None)
        };
        assert_eq!(svc.current_refresh_token().as_deref(), Some("rt-initial"));

        // A confidential client, with its secret.
        let (status, body) = refresh("rt-initial", Some(&secret));
        assert_eq!(status, 200, "{body}");
        let next = body["refresh_token"].as_str().unwrap().to_string();
        assert_ne!(next, "rt-initial");
        assert_eq!(svc.current_refresh_token(), Some(next.clone()));
        assert_eq!(
            access_claims(body["access_token"].as_str().unwrap())["sub"],
            MAILBOX
        );

        // The old token is spent.
        let (status, body) = refresh("rt-initial", Some(&secret));
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"], "invalid_grant");
        assert!(body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS70008:"));

        // A wrong secret is refused even with the right token...
        let (status, body) = refresh(&next, Some("wrong"));
        assert_eq!((status, &body["error"]), (401, &json!("invalid_client")));
        // ... and a public client needs none.
        let (status, body) = refresh(&next, None);
        assert_eq!(status, 200, "{body}");
        assert_ne!(body["refresh_token"], json!(next));

        assert_eq!(svc.requests("refresh_token"), 4);
        assert_eq!(svc.issued(), 2);
    }

    #[test]
    fn device_code_flow() {
        let svc = TokenService::start(config());
        let scope = "https://outlook.office365.com/IMAP.AccessAsUser.All offline_access";
        let (status, body) = post(
            &svc.device_url(),
            &[("client_id", "klachtd-test"), ("scope", scope)],
            None,
        );
        assert_eq!(status, 200, "{body}");
        let code = body["device_code"].as_str().unwrap().to_string();
        let user_code = body["user_code"].as_str().unwrap();
        assert_eq!(user_code.len(), 9);
        assert_eq!(&user_code[4..5], "-");
        let uri = body["verification_uri"].as_str().unwrap();
        assert!(uri.starts_with("http://127.0.0.1:") && uri.ends_with("/device"));
        assert_eq!(body["expires_in"], 300);
        assert_eq!(body["interval"], 1);
        assert!(body["message"].as_str().unwrap().contains(user_code));

        let poll = |code: &str| {
            post(
                &svc.token_url(),
                &[
                    ("grant_type", DEVICE_CODE),
                    ("device_code", code),
                    ("client_id", "klachtd-test"),
                ],
                None,
            )
        };
        for _ in 0..2 {
            let (status, body) = poll(&code);
            assert_eq!(status, 400, "{body}");
            assert_eq!(body["error"], "authorization_pending");
        }
        assert_eq!(svc.current_refresh_token(), None);
        let (status, body) = poll(&code);
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["scope"], scope);
        let refresh = body["refresh_token"].as_str().unwrap();
        assert_eq!(svc.current_refresh_token().as_deref(), Some(refresh));
        assert_eq!(
            access_claims(body["access_token"].as_str().unwrap())["sub"],
            MAILBOX
        );

        let (status, body) = poll(&code);
        assert_eq!((status, &body["error"]), (400, &json!("expired_token")));
        let (status, body) = poll("dc-unknown");
        assert_eq!((status, &body["error"]), (400, &json!("invalid_grant")));

        assert_eq!(svc.requests("devicecode"), 1);
        assert_eq!(svc.requests(DEVICE_CODE), 5);
        assert_eq!(svc.issued(), 1);
        assert_eq!(svc.scopes(), vec![scope]);
    }

    #[test]
    fn jwt_bearer_of_the_service_account() {
        let mut config = config();
        config.service_account = Some((
            ACCOUNT.to_string(),
            SERVICE_ACCOUNT_PUBLIC_KEY_PEM.as_bytes().to_vec(),
        ));
        let svc = TokenService::start(config);
        let now = unix_now();
        let scope = "https://mail.google.com/";
        let claims = json!({
            "iss": ACCOUNT,
            "sub": MAILBOX,
            "aud": svc.token_url(),
            "scope": scope,
            "iat": now,
            "exp": now + 3600,
        });
        let grant = |assertion: &str| {
            post(
                &svc.token_url(),
                &[("grant_type", JWT_BEARER), ("assertion", assertion)],
                None,
            )
        };

        let (status, body) = grant(&assertion(&claims));
        assert_eq!(status, 200, "{body}");
        assert!(body.get("refresh_token").is_none(), "{body}");
        assert_eq!(
            access_claims(body["access_token"].as_str().unwrap())["sub"],
            MAILBOX
        );

        // Another mailbox: not delegated.
        let mut other = claims.clone();
        other["sub"] = json!("someone@31solutions.test");
        let (status, body) = grant(&assertion(&other));
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"], "unauthorized_client");

        // The payload swapped under the signature.
        let good = assertion(&claims);
        let forged_payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&other).unwrap());
        let parts: Vec<&str> = good.split('.').collect();
        let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
        let (status, body) = grant(&forged);
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"], "invalid_grant");
        assert_eq!(body["error_description"], "Invalid JWT Signature.");

        // Too long-lived, addressed elsewhere, from another account.
        for (claim, value) in [
            ("exp", json!(now + 3601)),
            ("aud", json!("https://oauth2.googleapis.com/token")),
            ("iss", json!("other@example.iam.gserviceaccount.test")),
        ] {
            let mut bad = claims.clone();
            bad[claim] = value;
            let (status, body) = grant(&assertion(&bad));
            assert_eq!(status, 400, "{claim}: {body}");
            assert_eq!(body["error"], "invalid_grant", "{claim}: {body}");
        }

        assert_eq!(svc.requests(JWT_BEARER), 6);
        assert_eq!(svc.issued(), 1);
        // The scope claim of every assertion whose signature held.
        assert_eq!(svc.scopes().len(), 5);
        assert!(svc.scopes().iter().all(|s| s == scope));
    }

    #[test]
    fn service_account_json_has_the_fields_klachtd_reads() {
        let json: Value =
            serde_json::from_str(&service_account_json(ACCOUNT, "http://127.0.0.1:1/token"))
                .unwrap();
        assert_eq!(json["type"], "service_account");
        assert_eq!(json["client_email"], ACCOUNT);
        assert_eq!(json["token_uri"], "http://127.0.0.1:1/token");
        assert!(json["private_key_id"].is_string());
        let pem = json["private_key"].as_str().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).is_ok());
    }

    #[test]
    fn outage_other_grants_and_paths() {
        let svc = TokenService::start(config());
        let secret = svc.config().client_secret.clone();
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", "klachtd-test"),
            ("client_secret", secret.as_str()),
        ];

        svc.set_down(true);
        let (status, body) = post(&svc.token_url(), &form, None);
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"], "temporarily_unavailable");
        svc.set_down(false);
        let (status, body) = post(&svc.token_url(), &form, None);
        assert_eq!(status, 200, "{body}");
        assert_eq!(svc.requests("client_credentials"), 2);
        assert_eq!(svc.issued(), 1);

        let (status, body) = post(&svc.token_url(), &[("grant_type", "password")], None);
        assert_eq!(
            (status, &body["error"]),
            (400, &json!("unsupported_grant_type"))
        );
        assert_eq!(svc.requests("password"), 1);

        let base = svc.token_url().trim_end_matches("/token").to_string();
        let (status, _) = post(&format!("{base}/authorize"), &form, None);
        assert_eq!(status, 404);
        let answer = exchange(&base, b"GET /token HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        assert_eq!(parse_answer(&answer).0, 405);
    }

    #[test]
    fn expect_continue_and_chunked_bodies() {
        let svc = TokenService::start(config());
        let body = format!(
            "grant_type=client_credentials&client_id=klachtd-test&client_secret={}",
            svc.config().client_secret
        );
        let (first, rest) = body.split_at(20);
        let request = format!(
            "POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n\
             Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{first}\r\n{:x}\r\n{rest}\r\n0\r\n\r\n",
            first.len(),
            rest.len()
        );
        let answer = exchange(&svc.token_url(), request.as_bytes());
        assert!(
            answer.starts_with("HTTP/1.1 100 Continue\r\n\r\n"),
            "{answer}"
        );
        let (status, body) = parse_answer(&answer);
        assert_eq!(status, 200, "{body}");
    }

    #[test]
    fn stops_when_dropped() {
        let svc = TokenService::start(config());
        let url = svc.token_url();
        let host = url
            .trim_start_matches("http://")
            .trim_end_matches("/token")
            .to_string();
        assert!(TcpStream::connect(&host).is_ok());
        drop(svc);
        // The accept thread has ended and closed the listener.
        assert!(TcpStream::connect(&host).is_err());
    }
}
