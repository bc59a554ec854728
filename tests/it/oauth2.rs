//! Issue 15's test servers: the test Dovecot checks OAuth2 bearer tokens
//! itself (JWTs signed with the stack's key, `scripts/mailstack`), for IMAP
//! and, through Dovecot's SASL, for Postfix's SMTP AUTH. These tests hold
//! the servers to what a provider does: a valid token logs in with XOAUTH2
//! or OAUTHBEARER; an expired one, one signed with another key, and the
//! mailbox password offered as a token are refused.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine as _;

use crate::support::mailstack::MailStack;

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
