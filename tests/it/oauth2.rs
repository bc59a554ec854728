//! OAuth2 logins (Microsoft 365, Google Workspace, generic providers) on
//! real servers. The test Dovecot checks OAuth2 bearer tokens itself (JWTs
//! signed with the stack's key, `scripts/mailstack`), for IMAP and, through
//! Dovecot's SASL, for Postfix's SMTP AUTH; each test runs its own token
//! endpoint on loopback (`support::token_service`) that issues such tokens
//! by the grants the providers use.
//!
//! The first test holds the servers to what a provider does: a valid token
//! logs in with XOAUTH2 or OAUTHBEARER; an expired one, one signed with
//! another key, and the mailbox password offered as a token are refused.
//! The others drive the real `klachtd` with no password anywhere.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::support::mailstack::MailStack;
use crate::support::token_service::{
    service_account_json, TokenService, TokenServiceConfig, DEVICE_CODE, JWT_BEARER,
    SERVICE_ACCOUNT_PUBLIC_KEY_PEM,
};
use crate::support::NOW;
use crate::world::{error_line, said, Daemon, World};

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The XOAUTH2 initial response for `user` and `token`.
fn xoauth2(user: &str, token: &str) -> String {
    b64(&format!("user={user}\x01auth=Bearer {token}\x01\x01"))
}

/// The OAUTHBEARER (RFC 7628) initial response.
fn oauthbearer(user: &str, token: &str) -> String {
    b64(&format!("n,a={user},\x01auth=Bearer {token}\x01\x01"))
}

/// Reads lines until one starts with `until`, answering a SASL error
/// challenge (`+ …`, or SMTP's `334 …`) with an empty line as a client
/// must. Returns the last line.
fn finish(stream: &mut TcpStream, r: &mut BufReader<TcpStream>, until: &[&str]) -> String {
    loop {
        let mut line = String::new();
        assert!(r.read_line(&mut line).unwrap() > 0, "connection closed");
        if line.starts_with("+ ") || line.starts_with("334 ") {
            stream.write_all(b"\r\n").unwrap();
        } else if until.iter().any(|u| line.starts_with(u)) {
            return line;
        }
    }
}

/// `AUTHENTICATE mech ir` at the test IMAP server: its tagged answer.
fn imap_authenticate(stack: &MailStack, mech: &str, ir: &str) -> String {
    let mut s = TcpStream::connect(stack.imap_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut greeting = String::new();
    r.read_line(&mut greeting).unwrap();
    assert!(
        greeting.contains("AUTH=XOAUTH2") && greeting.contains("AUTH=OAUTHBEARER"),
        "{greeting}"
    );
    s.write_all(format!("a AUTHENTICATE {mech} {ir}\r\n").as_bytes())
        .unwrap();
    finish(&mut s, &mut r, &["a "])
}

/// `AUTH mech ir` at the test SMTP server: its final reply.
fn smtp_auth(stack: &MailStack, mech: &str, ir: &str) -> String {
    let mut s = TcpStream::connect(stack.smtp_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    finish(&mut s, &mut r, &["220 "]);
    s.write_all(b"EHLO klachtd-tests\r\n").unwrap();
    let mut ehlo = String::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        ehlo.push_str(&line);
        if line.starts_with("250 ") {
            break;
        }
    }
    assert!(
        ehlo.contains("XOAUTH2") && ehlo.contains("OAUTHBEARER"),
        "{ehlo}"
    );
    s.write_all(format!("AUTH {mech} {ir}\r\n").as_bytes())
        .unwrap();
    finish(&mut s, &mut r, &["235 ", "535 "])
}

#[test]
fn the_test_servers_take_a_valid_oauth2_token_and_refuse_the_rest() {
    let stack = MailStack::shared();
    let user = stack.fresh_address("info", "31solutions.test");
    let valid = stack.oauth2_token(&user, 60);
    let expired = stack.oauth2_token(&user, -60);
    let other_key = MailStack {
        oauth2_key: b64("another key, not the stack's"),
        ..stack.clone()
    }
    .oauth2_token(&user, 60);

    for (mech, ir) in [
        ("XOAUTH2", xoauth2(&user, &valid)),
        ("OAUTHBEARER", oauthbearer(&user, &valid)),
    ] {
        let imap = imap_authenticate(stack, mech, &ir);
        assert!(imap.starts_with("a OK"), "IMAP {mech}: {imap}");
        let smtp = smtp_auth(stack, mech, &ir);
        assert!(smtp.starts_with("235 "), "SMTP {mech}: {smtp}");
    }
    for (what, token) in [
        ("expired", expired.as_str()),
        ("signed with another key", other_key.as_str()),
        ("the password as a token", stack.password.as_str()),
    ] {
        let imap = imap_authenticate(stack, "XOAUTH2", &xoauth2(&user, token));
        assert!(imap.starts_with("a NO"), "IMAP, {what}: {imap}");
        let smtp = smtp_auth(stack, "XOAUTH2", &xoauth2(&user, token));
        assert!(smtp.starts_with("535 "), "SMTP, {what}: {smtp}");
    }
    // A token for one mailbox does not open another.
    let other = stack.fresh_address("bram", "31solutions.test");
    let imap = imap_authenticate(stack, "XOAUTH2", &xoauth2(&other, &valid));
    assert!(
        imap.starts_with("a NO"),
        "IMAP, someone else's token: {imap}"
    );
}

/// A world whose klachtd logs in to IMAP and SMTP with OAuth2 only: the
/// test configuration without its password key, `auth = "oauth2"` in
/// `[imap]` and `[smtp]`. `[oauth2]` comes with [`add_oauth2`].
fn oauth2_world() -> World {
    let w = World::new();
    let text = std::fs::read_to_string(&w.config).unwrap();
    let password = format!("password = \"{}\"\n", w.stack.password);
    assert!(text.contains(&password));
    let text = text.replacen(&password, "auth = \"oauth2\"\n", 1).replacen(
        "[smtp]\n",
        "[smtp]\nauth = \"oauth2\"\n",
        1,
    );
    assert!(!text.contains("password"), "{text}");
    std::fs::write(&w.config, text).unwrap();
    w
}

fn add_oauth2(w: &World, section: &str) {
    let mut text = std::fs::read_to_string(&w.config).unwrap();
    text.push_str(section);
    std::fs::write(&w.config, text).unwrap();
}

/// `[oauth2]` for Microsoft app-only access, its token URL pointed at `svc`.
fn microsoft(svc: &TokenService) -> String {
    format!(
        "\n[oauth2]\nprovider = \"microsoft\"\ntenant = \"31solutions.test\"\n\
         client_id = \"{}\"\ntoken_url = \"{}\"\n",
        svc.config().client_id,
        svc.token_url()
    )
}

/// A token service for `w`'s mailbox.
fn service_for(w: &World, lifetime_secs: i64) -> TokenService {
    let mut config = TokenServiceConfig::new(&w.info, &w.stack.oauth2_key);
    config.lifetime_secs = lifetime_secs;
    TokenService::start(config)
}

const SECRET_VAR: &str = "KLACHTD__OAUTH2__CLIENT_SECRET";

#[test]
fn oauth2_alone_runs_once_and_check_config_says_how_it_logged_in() {
    let w = oauth2_world();
    let svc = service_for(&w, 3600);
    add_oauth2(&w, &microsoft(&svc));
    let secret = svc.config().client_secret.clone();
    let env = [(SECRET_VAR, OsStr::new(&secret))];

    let client = w.client("oauth");
    w.deliver_fixture(&client, "nl-complaint-plain.eml", "oauth");
    let out = w.run_once_with(NOW, &env);
    assert_eq!(w.mails(&client).len(), 1, "the complaint is acknowledged");
    assert_eq!(
        w.mails(&w.anna).len() + w.mails(&w.bram).len(),
        1,
        "its handler is told"
    );
    assert_eq!(svc.issued(), 1, "one token serves IMAP and SMTP");
    assert_eq!(svc.requests("client_credentials"), 1);
    assert_eq!(svc.scopes(), ["https://outlook.office365.com/.default"]);
    // Exchange Online files SMTP mail in Sent itself: klachtd adds no copy.
    assert!(w.sent().is_empty(), "no second copy in Sent");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!log.contains(&secret) && !log.contains("eyJ"), "{log}");

    let out = w.command().envs(env).arg("check-config").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let how = "OAuth2 (microsoft, client credentials)";
    assert!(
        stdout.contains(&format!("imap: logged in as {} with {how}", w.info)),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("smtp: ok (logged in as {} with {how})", w.info)),
        "{stdout}"
    );
}

#[test]
fn a_wrong_client_secret_is_one_line_naming_the_key_never_the_secret() {
    let w = oauth2_world();
    let svc = service_for(&w, 3600);
    add_oauth2(&w, &microsoft(&svc));
    let wrong = "Wr0ng~secret.value";
    for args in [&["run", "--once"][..], &["check-config"]] {
        let out = w
            .command()
            .env(SECRET_VAR, wrong)
            .args(args)
            .output()
            .unwrap();
        let last = error_line(&out);
        assert!(
            last.contains("oauth2.client_secret: the provider says the secret is wrong or expired"),
            "{args:?}: {last}"
        );
        assert!(last.contains("AADSTS7000215"), "{last}");
        assert!(!said(&out).contains(wrong), "{args:?}: {}", said(&out));
    }
    // No secret at all: the key and what to do.
    let line = error_line(&w.klachtd(&["run", "--once"]));
    assert!(
        line.contains("oauth2.client_secret: not set; set KLACHTD__OAUTH2__CLIENT_SECRET"),
        "{line}"
    );
}

#[test]
fn a_token_the_server_refuses_is_renewed_once() {
    let w = oauth2_world();
    let svc = service_for(&w, 3600);
    add_oauth2(&w, &microsoft(&svc));
    let secret = svc.config().client_secret.clone();
    let env = [(SECRET_VAR, OsStr::new(&secret))];
    // The provider revoked the first token it gives (a password change,
    // an admin's revocation): IMAP refuses it, klachtd asks for another.
    svc.revoke_next(1);
    let client = w.client("revoked");
    w.deliver_fixture(&client, "nl-complaint-plain.eml", "revoked");
    w.run_once_with(NOW, &env);
    assert_eq!(
        w.mails(&client).len(),
        1,
        "acknowledged with the second token"
    );
    assert_eq!(svc.issued(), 2);
    // Revoked again and again: no endless asking, a clear error.
    svc.revoke_next(100);
    let out = w.command().envs(env).arg("check-config").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("IMAP login as")
            && stderr.contains("with OAuth2 (microsoft, client credentials) refused"),
        "{stderr}"
    );
    assert!(
        stderr.contains("New-ServicePrincipal"),
        "a hint for Microsoft: {stderr}"
    );
    assert_eq!(svc.issued(), 4, "one renewal per login, no more");
    // The provider is down: the run fails saying so (and intake's health
    // records it, for the alarm when it lasts).
    svc.set_down(true);
    let out = w
        .command()
        .envs(env)
        .args(["--now", NOW, "run", "--once"])
        .output()
        .unwrap();
    let line = error_line(&out);
    assert!(
        line.contains("oauth2: the token service refused (temporarily_unavailable"),
        "{line}"
    );
}

#[test]
fn a_google_service_account_signs_for_the_mailbox_and_gmail_files_sent_mail_itself() {
    let w = oauth2_world();
    let email = "klachtd@project-31.iam.gserviceaccount.com";
    let mut config = TokenServiceConfig::new(&w.info, &w.stack.oauth2_key);
    config.service_account = Some((email.into(), SERVICE_ACCOUNT_PUBLIC_KEY_PEM.into()));
    let svc = TokenService::start(config);
    let key_file = w.dir.path().join("sa.json");
    std::fs::write(&key_file, service_account_json(email, &svc.token_url())).unwrap();
    add_oauth2(
        &w,
        &format!(
            "\n[oauth2]\nprovider = \"google\"\nservice_account_file = \"{}\"\n",
            key_file.display()
        ),
    );
    let staff_copies = "Klachten/Staf";
    let text = std::fs::read_to_string(&w.config).unwrap().replacen(
        "[smtp]\n",
        &format!("staff_copy_folder = \"{staff_copies}\"\n\n[smtp]\n"),
        1,
    );
    std::fs::write(&w.config, text).unwrap();

    let client = w.client("gmail");
    w.deliver_fixture(&client, "nl-complaint-plain.eml", "gmail");
    w.run_once_with(NOW, &[]);
    assert_eq!(w.mails(&client).len(), 1, "acknowledged");
    assert_eq!(svc.requests(JWT_BEARER), 1);
    assert_eq!(svc.scopes(), ["https://mail.google.com/"]);
    assert!(w.sent().is_empty(), "Gmail files it; klachtd adds no copy");

    // Gmail also files the handler's notification in info@'s Sent, where
    // everyone who reads info@ would see it (art. 9). Once it is there,
    // klachtd takes it out, into the staff copy folder.
    let handler = if w.mails(&w.anna).is_empty() {
        &w.bram
    } else {
        &w.anna
    };
    let notification = w.mails(handler).remove(0);
    w.stack
        .imap_append(&w.info, "Sent", &notification, None, &["\\Seen"])
        .unwrap();
    assert_eq!(w.stack.messages(&w.info, "Sent").len(), 1);
    w.run_once_with("2026-11-23T10:05:00+01:00", &[]);
    assert!(w.stack.messages(&w.info, "Sent").is_empty(), "out of Sent");
    assert_eq!(w.stack.messages(&w.info, staff_copies), [notification]);
}

#[test]
fn oauth2_login_stores_a_refresh_token_the_daemon_uses_and_keeps_fresh() {
    let w = oauth2_world();
    let svc = service_for(&w, 3600);
    add_oauth2(
        &w,
        &format!(
            "\n[oauth2]\nprovider = \"generic\"\nclient_id = \"{}\"\ntoken_url = \"{}\"\n\
             device_url = \"{}\"\nscope = \"imap smtp offline_access\"\n",
            svc.config().client_id,
            svc.token_url(),
            svc.device_url()
        ),
    );
    let out = w.klachtd(&["oauth2", "login"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!(
            "Sign in as {} at {}",
            w.info,
            svc.device_url().replace("devicecode", "device")
        )),
        "{stdout}"
    );
    assert!(svc.requests(DEVICE_CODE) >= 3, "polled while pending");
    let file = w.dir.path().join("var/oauth2-refresh-token");
    let stored = std::fs::read_to_string(&file).unwrap();
    let issued = svc.current_refresh_token().unwrap();
    assert_eq!(stored, issued);
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "owner-only");
    assert!(
        !stdout.contains(&issued) && !stderr.contains(&issued),
        "never shown"
    );

    let client = w.client("delegated");
    w.deliver_fixture(&client, "nl-complaint-plain.eml", "delegated");
    let out = w.run_once_with(NOW, &[]);
    assert_eq!(w.mails(&client).len(), 1, "acknowledged");
    assert_eq!(svc.requests("refresh_token"), 1);
    // The provider rotated the refresh token: the file has the new one.
    let rotated = svc.current_refresh_token().unwrap();
    assert_ne!(rotated, issued);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), rotated);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!log.contains(&rotated) && !log.contains(&issued), "{log}");
}

/// `doveadm kick`: the server ends every IMAP session of `user`, as a
/// provider may end one whose token expired.
fn kick(stack: &MailStack, user: &str) {
    let out = std::process::Command::new("doveadm")
        .arg("-c")
        .arg(stack.dir.join("dovecot.conf"))
        .args(["kick", user])
        .output()
        .expect("doveadm");
    assert!(
        out.status.success(),
        "doveadm kick: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_daemon_outlives_its_one_minute_tokens_and_sessions_the_server_ends() {
    const LIFETIME: u64 = 60;
    const RUN: Duration = Duration::from_secs(LIFETIME * 3 + 30);
    const EVERY: Duration = Duration::from_secs(15);
    let w = oauth2_world();
    let svc = service_for(&w, LIFETIME as i64);
    add_oauth2(&w, &microsoft(&svc));
    let secret = svc.config().client_secret.clone();
    let log_path = w.dir.path().join("daemon.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let daemon = Daemon(
        w.command()
            .env(SECRET_VAR, &secret)
            .arg("run")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let show_log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    let start = Instant::now();
    let mut clients = Vec::new();
    let mut last_kick = start;
    let mut kicks = 0;
    while start.elapsed() < RUN {
        let client = w.client(&format!("c{}", clients.len()));
        w.deliver_fixture(&client, "nl-complaint-plain.eml", "lifetime");
        clients.push(client);
        // Once the token the session logged in with has expired, the
        // server ends the session.
        if last_kick.elapsed() > Duration::from_secs(LIFETIME + 5) {
            kick(w.stack, &w.info);
            kicks += 1;
            last_kick = Instant::now();
        }
        std::thread::sleep(EVERY);
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    let acknowledged = |c: &String| w.mails(c).len();
    while clients.iter().any(|c| acknowledged(c) == 0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    w.settle();
    let counts: Vec<usize> = clients.iter().map(acknowledged).collect();
    assert!(
        counts.iter().all(|&n| n == 1),
        "one acknowledgement each: {counts:?}\n{}",
        show_log()
    );
    let status = daemon.terminate();
    assert!(status.success(), "{}", show_log());
    let fetched = svc.issued();
    println!(
        "{} complaints over {} s, {kicks} sessions ended by the server, {fetched} tokens of {LIFETIME} s fetched",
        clients.len(),
        RUN.as_secs()
    );
    assert!(
        (3..clients.len()).contains(&fetched),
        "a new token once the old one ran out ({} s runs, {LIFETIME} s tokens), \
         not one per mail ({} mails): {fetched}",
        RUN.as_secs(),
        clients.len()
    );
    let log = show_log();
    assert!(log.contains("IMAP intake connected"), "{log}");
    assert!(
        !log.contains(&secret) && !log.contains("eyJ"),
        "no secret, no token in the log"
    );
}
