//! The receiving server's verdict on who sent a staff mail
//! (`intake.sender_auth`).
//!
//! A token (the Message-ID of klachtd's mail to a staff member) proves that
//! the mail answers something that staff member received. These checks add
//! what the organisation's own mail server knows about the sender; each
//! reads only headers that server writes itself and removes from, or
//! places above, anything arriving from outside:
//!
//! - `authentication-results`: RFC 8601 results of the trusted authserv-id
//!   with DMARC passing for the staff domain, or DKIM passing with a signing
//!   domain aligned with it (SPF alone is not enough: a shared sending
//!   platform passes SPF for every one of its customers);
//! - `exchange-internal`: Exchange Online's organisation stamp
//!   `X-MS-Exchange-Organization-AuthAs: Internal`, which Exchange strips
//!   from mail arriving from outside;
//! - `postfix-authenticated-sender`: the `Received` header the trusted
//!   Postfix host writes for a client that logged in
//!   (`smtpd_sasl_authenticated_header = yes`), naming the staff member's
//!   login.
//!
//! When any are configured, a staff mail must pass at least one of them.

use std::sync::LazyLock;

use regex::Regex;

use crate::config::{SenderAuth, SenderAuthMethod};
use crate::domain::classify::header_values as values;
use crate::domain::types::EmailAddress;

/// Does the server vouch that `staff` sent the mail with `headers` (lower-
/// case names, in the mail's order)? True when nothing is configured.
pub fn vouches(cfg: &SenderAuth, headers: &[(String, String)], staff: &EmailAddress) -> bool {
    if cfg.methods.is_empty() {
        return true;
    }
    cfg.methods.iter().any(|m| match m {
        SenderAuthMethod::AuthenticationResults => cfg
            .authserv_id
            .as_deref()
            .is_some_and(|id| authentication_results(headers, id, staff.domain())),
        SenderAuthMethod::ExchangeInternal => exchange_internal(headers),
        SenderAuthMethod::PostfixAuthenticatedSender => cfg
            .submission_host
            .as_deref()
            .is_some_and(|host| postfix_authenticated(headers, host, staff)),
    })
}

/// Did the server `authserv_id` record DMARC passing for `domain`, or DKIM
/// passing with a signing domain aligned with it (relaxed: the same domain
/// or a parent, never a bare TLD)? Headers of other servers do not count.
pub fn authentication_results(
    headers: &[(String, String)],
    authserv_id: &str,
    domain: &str,
) -> bool {
    let domain = domain.to_ascii_lowercase();
    let aligned = |d: &str| {
        let d = d
            .trim()
            .trim_matches('"')
            .trim_start_matches('@')
            .to_ascii_lowercase();
        let d = d.rsplit_once('@').map(|(_, x)| x.to_string()).unwrap_or(d);
        d.contains('.') && (d == domain || domain.ends_with(&format!(".{d}")))
    };
    values(headers, "authentication-results").any(|v| {
        let mut parts = v.split(';');
        let id = parts.next().unwrap_or_default();
        if !id
            .split_whitespace()
            .next()
            .is_some_and(|id| id.eq_ignore_ascii_case(authserv_id))
        {
            return false;
        }
        parts.any(|result| {
            let words: Vec<&str> = result.split_whitespace().collect();
            let Some((method, verdict)) = words.first().and_then(|w| w.split_once('=')) else {
                return false;
            };
            let prop = |key: &str| {
                words.iter().find_map(|w| {
                    w.split_once('=')
                        .filter(|(k, _)| k.eq_ignore_ascii_case(key))
                        .map(|(_, v)| v)
                })
            };
            verdict.eq_ignore_ascii_case("pass")
                && match method.to_ascii_lowercase().as_str() {
                    "dkim" => prop("header.d").or(prop("header.i")).is_some_and(aligned),
                    "dmarc" => prop("header.from").is_some_and(aligned),
                    _ => false,
                }
        })
    })
}

/// Exchange Online's stamp for mail sent by an authenticated user of the
/// organisation. Exchange removes `X-MS-Exchange-Organization-*` headers
/// from outside mail and stamps it `Anonymous`; every such stamp must say
/// `Internal`.
pub fn exchange_internal(headers: &[(String, String)]) -> bool {
    let mut stamps = values(headers, "x-ms-exchange-organization-authas").peekable();
    stamps.peek().is_some() && stamps.all(|v| v.trim().eq_ignore_ascii_case("internal"))
}

/// The parts of a `Received` header Postfix writes:
/// `from HELO (RDNS [IP]) [(Authenticated sender: LOGIN)] by HOST (…) with PROTO`.
/// HELO is one word the client chose; everything else is Postfix's.
static POSTFIX_RECEIVED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^from\s+\S+\s+\([^()]*\[[^\[\]()]+\]\)\s+(?:\(Authenticated sender:\s*(?P<login>[^()\s]+)\)\s+)?by\s+(?P<by>\S+)\s+(?:\([^()]*\)\s+)?with\s+(?P<proto>\S+)",
    )
    .expect("a valid pattern")
});

/// Did the trusted Postfix `host` receive this mail from a client that
/// logged in as `staff` (the address or its local part)?
///
/// The `Received` headers are read from the top (newest) down. Headers
/// without `by HOST`, or `by HOST … with LMTP`, are the later hops inside
/// the organisation (Dovecot's delivery). The first other header `by HOST`
/// decides: it must be Postfix's
/// own line for an authenticated submission, so a forged line further down
/// is never reached (a client's HELO is one word: it cannot write `by HOST`
/// itself). A content filter that re-injects the mail into the same
/// Postfix over SMTP puts an unauthenticated line on top, and the check
/// fails: use `authentication-results` there. An unauthenticated line is
/// never skipped, not even from loopback: a forger may be on it too.
pub fn postfix_authenticated(
    headers: &[(String, String)],
    host: &str,
    staff: &EmailAddress,
) -> bool {
    let host = host.to_ascii_lowercase();
    for v in values(headers, "received") {
        let words: Vec<String> = v.split_whitespace().map(str::to_ascii_lowercase).collect();
        let Some(by) = words.windows(2).position(|w| w[0] == "by" && w[1] == host) else {
            continue;
        };
        // The delivery into the mailbox (Dovecot's LMTP on the same host).
        let with = words[by..].windows(2).find(|w| w[0] == "with");
        if with.is_some_and(|w| w[1].starts_with("lmtp")) {
            continue;
        }
        let Some(c) = POSTFIX_RECEIVED.captures(v.trim()) else {
            return false;
        };
        if !c["by"].eq_ignore_ascii_case(&host) {
            return false;
        }
        let proto = c["proto"].trim_end_matches(';').to_ascii_uppercase();
        match c.name("login") {
            // RFC 3848: an A at the end of the protocol means SMTP AUTH.
            Some(login) if proto.ends_with('A') => {
                let login = login.as_str();
                let local = staff.as_str().rsplit_once('@').map(|(l, _)| l);
                return login.eq_ignore_ascii_case(staff.as_str())
                    || local.is_some_and(|l| login.eq_ignore_ascii_case(l));
            }
            Some(_) => return false,
            None => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &str, v: &str) -> Vec<(String, String)> {
        vec![(name.into(), v.into())]
    }

    const ID: &str = "mx.31solutions.test";
    const D: &str = "31solutions.test";

    #[test]
    fn dmarc_or_aligned_dkim_of_the_trusted_server_counts() {
        let ar = |v: &str| authentication_results(&h("authentication-results", v), ID, D);
        assert!(ar(
            "mx.31solutions.test; dkim=pass header.d=31solutions.test header.s=sel"
        ));
        assert!(ar("MX.31solutions.test 1; spf=fail smtp.mailfrom=x@evil.test; dmarc=pass header.from=31solutions.test"));
        assert!(ar(
            "mx.31solutions.test; dkim=pass (good) header.i=@31solutions.test"
        ));
        assert!(ar(
            "mx.31solutions.test; dkim=pass header.d=31solutions.test"
        ));
    }

    #[test]
    fn spf_other_servers_and_other_domains_do_not() {
        let ar = |v: &str, d: &str| authentication_results(&h("authentication-results", v), ID, d);
        assert!(
            !ar(
                "mx.31solutions.test; spf=pass smtp.mailfrom=anna@31solutions.test",
                D
            ),
            "SPF alone"
        );
        assert!(
            !ar("evil.test; dkim=pass header.d=31solutions.test", D),
            "another server"
        );
        assert!(!ar(
            "mx.31solutions.test; dkim=fail header.d=31solutions.test",
            D
        ));
        assert!(
            !ar("mx.31solutions.test; dkim=pass header.d=evil.test", D),
            "another domain"
        );
        assert!(
            !ar(
                "mx.31solutions.test; dkim=pass header.d=test",
                "31solutions.test.evil"
            ),
            "suffix is no parent"
        );
        assert!(
            !ar("mx.31solutions.test; dkim=pass header.d=test", D),
            "a TLD is no parent"
        );
        assert!(!ar("mx.31solutions.test; none", D));
        assert!(!ar("", D));
        assert!(!authentication_results(
            &h(
                "received",
                "mx.31solutions.test; dkim=pass header.d=31solutions.test"
            ),
            ID,
            D
        ));
    }

    #[test]
    fn the_exchange_stamp_counts_only_when_every_stamp_says_internal() {
        let n = "x-ms-exchange-organization-authas";
        assert!(exchange_internal(&h(n, "Internal")));
        assert!(!exchange_internal(&h(n, "Anonymous")));
        assert!(!exchange_internal(&[]));
        let mut both = h(n, "Anonymous");
        both.push((n.into(), "Internal".into()));
        assert!(
            !exchange_internal(&both),
            "a stamp from outside next to Exchange's own"
        );
    }

    fn received(lines: &[&str]) -> Vec<(String, String)> {
        lines
            .iter()
            .map(|l| ("received".to_string(), l.to_string()))
            .collect()
    }

    const HOST: &str = "mail.31solutions.test";
    const AUTHED: &str = "from [192.0.2.7] (dsl.example.net [192.0.2.7]) (Authenticated sender: anna@31solutions.test) by mail.31solutions.test (Postfix) with ESMTPSA id 4Xy for <info@31solutions.test>; Mon, 30 Nov 2026 10:00:00 +0100 (CET)";
    const OUTSIDE: &str = "from evil.example (evil.example [203.0.113.9]) by mail.31solutions.test (Postfix) with ESMTP id 4Xz for <info@31solutions.test>; Mon, 30 Nov 2026 10:00:00 +0100 (CET)";
    const LMTP: &str = "from mail.31solutions.test ([127.0.0.1]) by imap.31solutions.test with LMTP id abc (envelope-from <x@y>) for <info@31solutions.test>; Mon, 30 Nov 2026 10:00:01 +0100";
    const LMTP_SAME_HOST: &str = "from mail.31solutions.test ([127.0.0.1]) by mail.31solutions.test with LMTP id UC+4 (envelope-from <x@y>) for <info@31solutions.test>; Mon, 30 Nov 2026 19:55:25 +0000";

    #[test]
    fn postfix_s_line_for_a_logged_in_client_counts() {
        let anna = EmailAddress::parse("anna@31solutions.test").unwrap();
        assert!(postfix_authenticated(
            &received(&[LMTP, AUTHED]),
            HOST,
            &anna
        ));
        assert!(postfix_authenticated(
            &received(&[LMTP_SAME_HOST, AUTHED]),
            HOST,
            &anna
        ));
        let by_local_part = AUTHED.replace("sender: anna@31solutions.test", "sender: anna");
        assert!(postfix_authenticated(
            &received(&[&by_local_part]),
            HOST,
            &anna
        ));
        let piet = EmailAddress::parse("piet@31solutions.test").unwrap();
        assert!(
            !postfix_authenticated(&received(&[AUTHED]), HOST, &piet),
            "another login"
        );
    }

    #[test]
    fn a_forged_line_below_postfix_s_own_is_never_reached() {
        let anna = EmailAddress::parse("anna@31solutions.test").unwrap();
        assert!(!postfix_authenticated(
            &received(&[OUTSIDE, AUTHED]),
            HOST,
            &anna
        ));
        assert!(!postfix_authenticated(
            &received(&[LMTP_SAME_HOST, OUTSIDE, AUTHED]),
            HOST,
            &anna
        ));
        // Outside mail from loopback (a local forger, or a re-injecting filter).
        let local = "from localhost (localhost [127.0.0.1]) by mail.31solutions.test (Postfix) with ESMTP id 9; Mon, 30 Nov 2026 10:00:01 +0100";
        assert!(!postfix_authenticated(
            &received(&[local, AUTHED]),
            HOST,
            &anna
        ));
        // A client can say any HELO, including a loopback literal and the host.
        let helo = "from [127.0.0.1] (evil.example [203.0.113.9]) by mail.31solutions.test (Postfix) with ESMTP id 1; Mon, 30 Nov 2026";
        assert!(!postfix_authenticated(
            &received(&[helo, AUTHED]),
            HOST,
            &anna
        ));
        let helo = "from mail.31solutions.test(Authenticated (evil.example [203.0.113.9]) by mail.31solutions.test (Postfix) with ESMTP id 1";
        assert!(!postfix_authenticated(
            &received(&[helo, AUTHED]),
            HOST,
            &anna
        ));
        // Authenticated sender without an authenticated protocol: not Postfix's.
        let odd = AUTHED.replace("ESMTPSA", "ESMTP");
        assert!(!postfix_authenticated(&received(&[&odd]), HOST, &anna));
        assert!(
            !postfix_authenticated(&received(&[LMTP]), HOST, &anna),
            "never through the host"
        );
        assert!(!postfix_authenticated(&[], HOST, &anna));
    }

    #[test]
    fn nothing_configured_vouches_and_configured_methods_are_any_of() {
        let anna = EmailAddress::parse("anna@31solutions.test").unwrap();
        let none = SenderAuth::default();
        assert!(vouches(&none, &[], &anna));
        let cfg = SenderAuth {
            methods: vec![
                SenderAuthMethod::AuthenticationResults,
                SenderAuthMethod::ExchangeInternal,
                SenderAuthMethod::PostfixAuthenticatedSender,
            ],
            authserv_id: Some(ID.into()),
            submission_host: Some(HOST.into()),
        };
        assert!(!vouches(&cfg, &[], &anna));
        assert!(vouches(
            &cfg,
            &h("x-ms-exchange-organization-authas", "Internal"),
            &anna
        ));
        assert!(vouches(&cfg, &received(&[AUTHED]), &anna));
        assert!(vouches(
            &cfg,
            &h(
                "authentication-results",
                "mx.31solutions.test; dmarc=pass header.from=31solutions.test"
            ),
            &anna
        ));
        let only_exchange = SenderAuth {
            methods: vec![SenderAuthMethod::ExchangeInternal],
            ..cfg
        };
        assert!(!vouches(&only_exchange, &received(&[AUTHED]), &anna));
    }
}
