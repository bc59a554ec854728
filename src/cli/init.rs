//! `klachtd init`: a commented configuration from a few answers (the
//! organisation, its mailbox and provider, the staff and their roles),
//! checked with `check-config`, and the next steps. Every answer can be a
//! flag; with `--no-input` nothing is asked and a missing one is an error
//! naming its flag. A bad answer is asked again, with the reason.
//!
//! The file written is the commented example (config/klachtd.example.toml)
//! with the answers filled in, so every other key keeps its explanation.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::config::Settings;
use crate::domain::types::EmailAddress;

const EXAMPLE: &str = include_str!("../../config/klachtd.example.toml");

#[derive(Args, Debug, Default)]
pub struct InitArgs {
    /// Where to write the configuration (default: --config, else
    /// /etc/klachtd/klachtd.toml).
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Replace an existing file.
    #[arg(long)]
    pub force: bool,
    /// Ask nothing: every answer comes from the flags.
    #[arg(long)]
    pub no_input: bool,
    /// Do not run check-config afterwards (no mail server to reach yet).
    #[arg(long)]
    pub no_check: bool,
    /// The organisation's name, as clients see it.
    #[arg(long)]
    pub organisation: Option<String>,
    /// The complaints mailbox, e.g. info@example.nl.
    #[arg(long)]
    pub address: Option<String>,
    /// Where the regulation is published (linked in every acknowledgement).
    #[arg(long)]
    pub regulation_url: Option<String>,
    /// microsoft (Microsoft 365) | google (Google Workspace) | imap (any
    /// other IMAP and SMTP server, with a password).
    #[arg(long)]
    pub provider: Option<String>,
    /// Microsoft: the tenant (contoso.onmicrosoft.com or its id).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Microsoft: the app registration's application (client) id.
    #[arg(long)]
    pub client_id: Option<String>,
    /// Google: the service account's JSON key file.
    #[arg(long)]
    pub service_account_file: Option<String>,
    /// imap: the IMAP server's name.
    #[arg(long)]
    pub imap_host: Option<String>,
    #[arg(long)]
    pub imap_port: Option<u16>,
    /// tls | starttls | none
    #[arg(long)]
    pub imap_security: Option<String>,
    /// imap: the SMTP server's name.
    #[arg(long)]
    pub smtp_host: Option<String>,
    #[arg(long)]
    pub smtp_port: Option<u16>,
    /// tls | starttls | none
    #[arg(long)]
    pub smtp_security: Option<String>,
    /// imap: the SMTP login ("" for none; default: the mailbox).
    #[arg(long)]
    pub smtp_username: Option<String>,
    /// The register (default: sqlite:///var/lib/klachtd/klachtd.db).
    #[arg(long)]
    pub database_url: Option<String>,
    /// A staff member: "Name <email>:roles", roles comma-separated from
    /// handler and supervisor (none: only someone a complaint may be
    /// about). Repeat for each; at least one supervisor.
    #[arg(long = "staff", value_name = "NAME <EMAIL>:ROLES")]
    pub staff: Vec<String>,
}

/// One staff member as answered.
#[derive(Debug)]
struct Member {
    name: String,
    email: EmailAddress,
    roles: Vec<&'static str>,
}

/// Questions on `input`, prompts and re-asks on `out`.
struct Asker<'a> {
    input: &'a mut dyn BufRead,
    out: &'a mut dyn Write,
    allowed: bool,
}

impl Asker<'_> {
    /// The flag's value, else an answer (`default` on an empty one),
    /// checked by `check`; a bad answer is asked again with the reason.
    fn get<T>(
        &mut self,
        flag: &str,
        given: Option<String>,
        question: &str,
        default: Option<&str>,
        check: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T> {
        if let Some(v) = given {
            return check(v.trim()).map_err(|e| anyhow::anyhow!("--{flag}: {e}"));
        }
        if !self.allowed {
            match default {
                Some(d) => return check(d).map_err(|e| anyhow::anyhow!("--{flag}: {e}")),
                None => bail!("--{flag} is needed with --no-input"),
            }
        }
        loop {
            match default {
                Some(d) if !d.is_empty() => write!(self.out, "{question} [{d}]: ")?,
                _ => write!(self.out, "{question}: ")?,
            }
            self.out.flush()?;
            let mut line = String::new();
            if self.input.read_line(&mut line)? == 0 {
                bail!("no answer to {question:?} (end of input); give --{flag}");
            }
            let answer = match (line.trim(), default) {
                ("", Some(d)) => d.to_string(),
                (a, _) => a.to_string(),
            };
            match check(&answer) {
                Ok(v) => return Ok(v),
                Err(why) => writeln!(self.out, "  {why}; try again.")?,
            }
        }
    }
}

fn nonempty(s: &str) -> Result<String, String> {
    match s.trim() {
        "" => Err("an answer is needed".into()),
        s => Ok(s.to_string()),
    }
}

fn email(s: &str) -> Result<EmailAddress, String> {
    EmailAddress::parse(s.trim()).map_err(|_| format!("{s:?} is not an email address"))
}

fn url(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.starts_with("https://") || s.starts_with("http://") {
        Ok(s.to_string())
    } else {
        Err(format!("{s:?} is not a web address (https://…)"))
    }
}

fn security(s: &str) -> Result<&'static str, String> {
    match s.trim() {
        "tls" => Ok("tls"),
        "starttls" => Ok("starttls"),
        "none" => Ok("none"),
        other => Err(format!("{other:?}: tls, starttls or none")),
    }
}

fn port(s: &str) -> Result<u16, String> {
    s.trim()
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{s:?} is not a port number"))
}

/// "Name <email>:roles".
fn member(s: &str) -> Result<Member, String> {
    let (person, roles) = s.rsplit_once(':').unwrap_or((s, ""));
    let (name, rest) = person
        .split_once('<')
        .ok_or_else(|| format!("{s:?}: expected Name <email>:roles"))?;
    let address = rest
        .strip_suffix('>')
        .or_else(|| rest.trim_end().strip_suffix('>'))
        .ok_or_else(|| format!("{s:?}: expected Name <email>:roles"))?;
    let roles = roles
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| match r {
            "handler" => Ok("handler"),
            "supervisor" => Ok("supervisor"),
            other => Err(format!("{other:?}: roles are handler and supervisor")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Member {
        name: nonempty(name)?,
        email: email(address)?,
        roles,
    })
}

/// A TOML basic string: JSON's string escapes are all valid in TOML.
fn toml_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// `text` with `key = value` in the first `[section]`: the key's line (or
/// its commented-out line) replaced, else added at the section's end.
fn set_key(text: &str, section: &str, key: &str, value: &str) -> String {
    let header = format!("[{section}]");
    let mut out: Vec<String> = Vec::new();
    let (mut inside, mut done) = (false, false);
    let sets = |line: &str| {
        let l = line.trim_start_matches("# ").trim_start();
        l.strip_prefix(key)
            .is_some_and(|r| r.trim_start().starts_with('='))
    };
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            if inside && !done {
                // Before the blank lines that end the section.
                let at = out
                    .iter()
                    .rposition(|l| !l.trim().is_empty())
                    .map_or(0, |i| i + 1);
                out.insert(at, format!("{key} = {value}"));
                done = true;
            }
            inside = trimmed == header;
        }
        if inside && !done && sets(line) {
            out.push(format!("{key} = {value}"));
            done = true;
        } else {
            out.push(line.to_string());
        }
    }
    if !done {
        if !inside {
            out.push(String::new());
            out.push(header);
        }
        out.push(format!("{key} = {value}"));
    }
    out.join("\n") + "\n"
}

/// `text` without `[section]` (or every `[[section]]`): its header, keys
/// and the comments between them and the next section's own comments.
fn drop_section(text: &str, section: &str) -> String {
    let names = [format!("[{section}]"), format!("[[{section}]]")];
    let mut out: Vec<&str> = Vec::new();
    let mut skipping = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            skipping = names.iter().any(|n| n == t);
        }
        if !skipping {
            out.push(line);
        }
    }
    out.join("\n") + "\n"
}

pub(super) async fn run(args: InitArgs, config: Option<PathBuf>) -> Result<()> {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut stdout = std::io::stdout();
    let path = args
        .output
        .clone()
        .or(config)
        .unwrap_or_else(|| PathBuf::from("/etc/klachtd/klachtd.toml"));
    if path.exists() && !args.force {
        bail!(
            "{} exists; give --force to replace it, or --output for another file",
            path.display()
        );
    }
    let no_check = args.no_check;
    let text = {
        let mut ask = Asker {
            input: &mut input,
            out: &mut stdout,
            allowed: !args.no_input,
        };
        answers(args, &mut ask)?
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    write_config(&path, &text)?;
    println!("wrote {}", path.display());
    let settings =
        Settings::load(&path).with_context(|| format!("{} needs fixing", path.display()))?;
    let env_hint = match (&settings.imap.auth, &settings.oauth2) {
        (crate::config::Auth::OAuth2(_), Some(o)) if o.provider() == crate::config::Provider::Google => {
            "put the service account's key where oauth2.service_account_file says (mode 0640)"
        }
        (crate::config::Auth::OAuth2(_), _) => {
            "put KLACHTD__OAUTH2__CLIENT_SECRET=… in /etc/klachtd/secrets.env (mode 0600), or run `klachtd oauth2 login`"
        }
        _ => "put KLACHTD__IMAP__PASSWORD=… (and KLACHTD__SMTP__PASSWORD=…) in /etc/klachtd/secrets.env (mode 0600)",
    };
    if !no_check {
        println!("checking it (klachtd check-config):");
        if let Err(e) = super::check_config(settings).await {
            println!("check-config: {}", crate::store::explain(&e));
            println!("next: {env_hint}; fix what it says, then run `klachtd check-config` again");
            bail!("the configuration is written, but check-config failed");
        }
    }
    println!("next steps:");
    println!("  1. {env_hint}");
    println!(
        "  2. read {} once: every other key is explained there, with its default",
        path.display()
    );
    println!("  3. klachtd --config {} check-config", path.display());
    println!("  4. systemctl enable --now klachtd   (or: klachtd run)");
    Ok(())
}

/// Writes the file owner-only (it may come to hold secrets' neighbours).
fn write_config(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// The questions, in order; the example with the answers filled in.
fn answers(a: InitArgs, ask: &mut Asker<'_>) -> Result<String> {
    let name = ask.get(
        "organisation",
        a.organisation,
        "Organisation's name",
        None,
        nonempty,
    )?;
    let address = ask.get(
        "address",
        a.address,
        "The complaints mailbox (e.g. info@example.nl)",
        None,
        email,
    )?;
    let regulation_url = ask.get(
        "regulation-url",
        a.regulation_url,
        "Where the complaints regulation is published",
        None,
        url,
    )?;
    let provider = ask.get(
        "provider",
        a.provider,
        "Mailbox provider: microsoft (Microsoft 365), google (Google Workspace) or imap (other)",
        Some("imap"),
        |s| match s.trim().to_ascii_lowercase().as_str() {
            "microsoft" | "m365" | "microsoft365" => Ok("microsoft"),
            "google" | "gmail" | "workspace" => Ok("google"),
            "imap" | "other" => Ok("imap"),
            other => Err(format!("{other:?}: microsoft, google or imap")),
        },
    )?;
    let mut t = EXAMPLE.to_string();
    t = set_key(&t, "organisation", "name", &toml_string(&name));
    t = set_key(
        &t,
        "organisation",
        "address",
        &toml_string(address.as_str()),
    );
    t = set_key(
        &t,
        "organisation",
        "regulation_url",
        &toml_string(&regulation_url),
    );
    t = set_key(
        &t,
        "organisation",
        "message_id_domain",
        &toml_string(&format!("klachtd.{}", address.domain())),
    );
    t = set_key(&t, "imap", "username", &toml_string(address.as_str()));
    let (imap, smtp) = match provider {
        "microsoft" => {
            let tenant = ask.get(
                "tenant",
                a.tenant,
                "Microsoft tenant (contoso.onmicrosoft.com or its id)",
                None,
                nonempty,
            )?;
            let client_id = ask.get(
                "client-id",
                a.client_id,
                "Application (client) id of the app registration",
                None,
                nonempty,
            )?;
            t = set_key(&t, "oauth2", "provider", "\"microsoft\"");
            t = set_key(&t, "oauth2", "tenant", &toml_string(&tenant));
            t = set_key(&t, "oauth2", "client_id", &toml_string(&client_id));
            (
                ("outlook.office365.com", 993, "tls"),
                ("smtp.office365.com", 587, "starttls"),
            )
        }
        "google" => {
            let file = ask.get(
                "service-account-file",
                a.service_account_file,
                "The service account's JSON key file",
                Some("/etc/klachtd/google-service-account.json"),
                nonempty,
            )?;
            t = drop_section(&t, "oauth2");
            t = set_key(&t, "oauth2", "provider", "\"google\"");
            t = set_key(&t, "oauth2", "service_account_file", &toml_string(&file));
            (
                ("imap.gmail.com", 993, "tls"),
                ("smtp.gmail.com", 587, "starttls"),
            )
        }
        _ => (("", 993, "tls"), ("", 587, "starttls")),
    };
    let oauth2 = provider != "imap";
    let imap_host = match (oauth2, a.imap_host) {
        (true, None) => imap.0.to_string(),
        (_, given) => ask.get("imap-host", given, "IMAP server", None, nonempty)?,
    };
    let imap_security = ask.get(
        "imap-security",
        a.imap_security,
        "IMAP security (tls, starttls, none)",
        Some(imap.2),
        security,
    )?;
    let imap_default_port = if imap_security == "tls" { 993 } else { 143 };
    let imap_port = match a.imap_port {
        Some(p) => p,
        None if oauth2 => imap.1,
        None => ask.get(
            "imap-port",
            None,
            "IMAP port",
            Some(&imap_default_port.to_string()),
            port,
        )?,
    };
    let smtp_host = match (oauth2, a.smtp_host) {
        (true, None) => smtp.0.to_string(),
        (_, given) => ask.get("smtp-host", given, "SMTP server", None, nonempty)?,
    };
    let smtp_security = ask.get(
        "smtp-security",
        a.smtp_security,
        "SMTP security (tls, starttls, none)",
        Some(smtp.2),
        security,
    )?;
    let smtp_default_port = match smtp_security {
        "tls" => 465,
        "starttls" => 587,
        _ => 25,
    };
    let smtp_port = match a.smtp_port {
        Some(p) => p,
        None if oauth2 => smtp.1,
        None => ask.get(
            "smtp-port",
            None,
            "SMTP port",
            Some(&smtp_default_port.to_string()),
            port,
        )?,
    };
    t = set_key(&t, "imap", "host", &toml_string(&imap_host));
    t = set_key(&t, "imap", "port", &imap_port.to_string());
    t = set_key(&t, "imap", "security", &toml_string(imap_security));
    t = set_key(&t, "smtp", "host", &toml_string(&smtp_host));
    t = set_key(&t, "smtp", "port", &smtp_port.to_string());
    t = set_key(&t, "smtp", "security", &toml_string(smtp_security));
    if oauth2 {
        t = set_key(&t, "imap", "auth", "\"oauth2\"");
        t = set_key(&t, "smtp", "auth", "\"oauth2\"");
        t = set_key(&t, "smtp", "username", "\"\"");
    } else {
        let login = ask.get(
            "smtp-username",
            a.smtp_username,
            "SMTP login (empty: none)",
            Some(address.as_str()),
            |s| Ok::<_, String>(s.trim().to_string()),
        )?;
        t = set_key(&t, "smtp", "username", &toml_string(&login));
        t = drop_section(&t, "oauth2");
    }
    let database = ask.get(
        "database-url",
        a.database_url,
        "The register",
        Some("sqlite:///var/lib/klachtd/klachtd.db"),
        |s| {
            let s = s.trim();
            if s.starts_with("sqlite://")
                || s.starts_with("postgres://")
                || s.starts_with("postgresql://")
            {
                Ok(s.to_string())
            } else {
                Err(format!("{s:?}: sqlite://FILE or postgres://…"))
            }
        },
    )?;
    t = set_key(&t, "database", "url", &toml_string(&database));
    let staff = staff(a.staff, ask)?;
    t = drop_section(&t, "staff");
    let mut roster = String::new();
    for m in &staff {
        let roles: Vec<String> = m.roles.iter().map(|r| toml_string(r)).collect();
        roster.push_str(&format!(
            "\n[[staff]]\nname = {}\nemail = {}\nroles = [{}]\n",
            toml_string(&m.name),
            toml_string(m.email.as_str()),
            roles.join(", ")
        ));
    }
    Ok(t.trim_end().to_string() + "\n" + &roster)
}

/// The staff from `--staff`, else asked one by one; at least one
/// supervisor.
fn staff(given: Vec<String>, ask: &mut Asker<'_>) -> Result<Vec<Member>> {
    if !given.is_empty() || !ask.allowed {
        let members = given
            .iter()
            .map(|s| member(s).map_err(|e| anyhow::anyhow!("--staff: {e}")))
            .collect::<Result<Vec<_>>>()?;
        if !members.iter().any(|m| m.roles.contains(&"supervisor")) {
            bail!("--staff: at least one supervisor is needed (…:handler,supervisor)");
        }
        return Ok(members);
    }
    writeln!(
        ask.out,
        "Staff: everyone who may handle complaints or be named in one. One at a time as \
         Name <email>; an empty line ends the list."
    )?;
    let mut members: Vec<Member> = Vec::new();
    loop {
        let done_ok = members.iter().any(|m| m.roles.contains(&"supervisor"));
        let person = ask.get(
            "staff",
            None,
            "Staff member (Name <email>)",
            Some(""),
            |s| {
                if s.trim().is_empty() {
                    return if done_ok {
                        Ok(None)
                    } else {
                        Err("at least one supervisor is needed first".to_string())
                    };
                }
                member(&format!("{s}:")).map(Some)
            },
        )?;
        let Some(mut m) = person else {
            return Ok(members);
        };
        m.roles = ask.get(
            "staff",
            None,
            &format!("Roles of {} (handler, supervisor, both, none)", m.name),
            Some("handler"),
            |s| match s.trim() {
                "handler" => Ok(vec!["handler"]),
                "supervisor" => Ok(vec!["supervisor"]),
                "both" => Ok(vec!["handler", "supervisor"]),
                "none" => Ok(vec![]),
                other => Err(format!("{other:?}: handler, supervisor, both or none")),
            },
        )?;
        members.push(m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_set_in_their_own_section() {
        let t = "[a]\nx = 1\n# y = 2\n\n[b]\nx = 3\n";
        let t = set_key(t, "a", "y", "5");
        assert_eq!(t, "[a]\nx = 1\ny = 5\n\n[b]\nx = 3\n");
        let t = set_key(&t, "b", "z", "\"q\"");
        assert_eq!(t, "[a]\nx = 1\ny = 5\n\n[b]\nx = 3\nz = \"q\"\n");
        let t = set_key(&t, "a", "w", "0");
        assert_eq!(t, "[a]\nx = 1\ny = 5\nw = 0\n\n[b]\nx = 3\nz = \"q\"\n");
        let t = set_key(&t, "c", "k", "1");
        assert!(t.ends_with("\n[c]\nk = 1\n"), "{t}");
    }

    #[test]
    fn staff_answers_are_read_strictly() {
        let m = member("Anna de Vries <anna@x.nl>:handler,supervisor").unwrap();
        assert_eq!(
            (m.name.as_str(), m.email.as_str()),
            ("Anna de Vries", "anna@x.nl")
        );
        assert_eq!(m.roles, ["handler", "supervisor"]);
        assert!(member("Anna <anna@x.nl>:boss")
            .unwrap_err()
            .contains("roles are"));
        assert!(member("anna@x.nl:handler").is_err());
        assert!(member("Anna <not an address>:handler").is_err());
        assert!(member("Bram <bram@x.nl>:").unwrap().roles.is_empty());
    }

    #[test]
    fn a_bad_answer_is_asked_again_with_the_reason() {
        let mut input: &[u8] = b"not a mail\ninfo@x.nl\n";
        let mut out = Vec::new();
        let mut ask = Asker {
            input: &mut input,
            out: &mut out,
            allowed: true,
        };
        let a = ask.get("address", None, "Mailbox", None, email).unwrap();
        assert_eq!(a.as_str(), "info@x.nl");
        let said = String::from_utf8(out).unwrap();
        assert!(
            said.contains("\"not a mail\" is not an email address; try again."),
            "{said}"
        );
        // End of input: an error naming the flag, not a loop.
        let mut empty: &[u8] = b"";
        let mut out = Vec::new();
        let mut ask = Asker {
            input: &mut empty,
            out: &mut out,
            allowed: true,
        };
        let e = ask
            .get("address", None, "Mailbox", None, email)
            .unwrap_err();
        assert!(e.to_string().contains("give --address"), "{e}");
    }

    #[test]
    fn every_provider_gives_a_valid_config() {
        for (provider, extra) in [
            (
                "microsoft",
                vec!["--tenant", "contoso.onmicrosoft.com", "--client-id", "abc"],
            ),
            (
                "imap",
                vec![
                    "--imap-host",
                    "mail.example.nl",
                    "--smtp-host",
                    "mail.example.nl",
                ],
            ),
        ] {
            let mut argv = vec![
                "x",
                "--organisation",
                "Coaching & Co",
                "--address",
                "info@example.nl",
                "--regulation-url",
                "https://example.nl/klachten",
                "--provider",
                provider,
                "--staff",
                "Anna de Vries <anna@example.nl>:handler,supervisor",
                "--staff",
                "Bram <bram@example.nl>:handler",
            ];
            argv.extend(extra);
            #[derive(clap::Parser)]
            struct P {
                #[command(flatten)]
                a: InitArgs,
            }
            let p = <P as clap::Parser>::try_parse_from(argv).unwrap();
            let mut none: &[u8] = b"";
            let mut out = Vec::new();
            let mut ask = Asker {
                input: &mut none,
                out: &mut out,
                allowed: false,
            };
            let text = answers(p.a, &mut ask).unwrap();
            let regulation = concat!(env!("CARGO_MANIFEST_DIR"), "/config/klachtenreglement.txt");
            let env = vec![(
                "KLACHTD__ORGANISATION__REGULATION_FILE".to_string(),
                regulation.to_string(),
            )];
            let s = Settings::from_toml(&text, Path::new("/etc/klachtd"), &env)
                .unwrap_or_else(|e| panic!("{provider}: {e}\n{text}"));
            assert_eq!(s.organisation.name, "Coaching & Co");
            assert_eq!(s.staff.len(), 2);
            assert_eq!(s.oauth2.is_some(), provider == "microsoft", "{text}");
            assert!(text.contains("# Acknowledge within"), "the comments stay");
        }
    }
}
