//! Rendering of outgoing mail from Tera templates.
//!
//! Every message has three parts, each its own template file under
//! `templates/{lang}/`: `{name}.subject.txt` (one line), `{name}.txt` (plain
//! text) and `{name}.html` (autoescaped HTML). The built-in files are compiled
//! into the binary; an override directory with the same layout can replace
//! any of them one by one, so an organisation can change its texts without a
//! rebuild.
//!
//! The caller builds the template's context, the struct of the same name in
//! [`context`] (so a template is only ever rendered with its own context),
//! and passes dates already formatted with [`long_date`] /
//! [`long_date_with_weekday`]. The same two functions are also available in
//! templates as filters on `YYYY-MM-DD` strings:
//! `{{ d | long_date(lang=lang) }}`, `{{ d | long_date_with_weekday(lang=lang) }}`.

pub mod context;
pub mod echo;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};
use jiff::civil::{Date, Weekday};

pub use context::MailContext;

use crate::domain::types::Lang;

macro_rules! templates {
    ($($(#[$doc:meta])* $name:ident => $file:literal,)+) => {
        /// The messages klachtd sends. Each has its context, the struct of
        /// the same name in [`context`], which is all its files read.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Template {
            $($(#[$doc])* $name,)+
        }

        impl Template {
            pub const ALL: &'static [Template] = &[$(Template::$name,)+];

            /// The file stem of the template's files.
            pub fn name(self) -> &'static str {
                match self {
                    $(Template::$name => $file,)+
                }
            }
        }

        $(impl context::MailContext for context::$name<'_> {
            const TEMPLATE: Template = Template::$name;
        })+
    };
}

templates! {
    /// Acknowledgement of receipt to the client (art. 5).
    Ack => "ack",
    /// A new complaint, to the assigned handler.
    HandlerNew => "handler_new",
    /// The case went to another handler; to the one who had it.
    HandlerReleased => "handler_released",
    /// Possible complaint awaiting a supervisor's `/klacht` or `/geen-klacht`.
    Triage => "triage",
    /// No independent handler could be assigned; to each supervisor.
    Unassigned => "unassigned",
    /// A client's reply on a case, to the handler.
    ClientReplyToHandler => "client_reply",
    /// The regulation, to whoever asked for it (art. 11); no case.
    Regulation => "regulation",
    /// A request for a paper copy of the regulation, to each supervisor.
    RegulationPaper => "regulation_paper",
    /// A staff answer relayed to the client: plain answer, proposal,
    /// rejection, extension notice (art. 6) or external route (art. 8).
    ToClient => "to_client",
    /// What a staff member's mail did, or why it was refused.
    CommandResult => "command_result",
    /// A response date coming up, or a client's reply waiting for an
    /// answer; to the handler (or each supervisor when there is none).
    Reminder => "reminder",
    /// A missed deadline (art. 5, art. 6) or a handler the complaint is
    /// about, to each supervisor the complaint does not concern.
    Escalation => "escalation",
    /// The daily overview of new, due, overdue and open cases, to one
    /// supervisor; no case. Answerable per triage item (reply marker).
    Digest => "digest",
    /// Intake or outbox trouble (alarm) and its end (recovery), to each
    /// supervisor; no case, no reply marker.
    Health => "health",
    /// The periodic analysis (art. 10) with its chart, to each supervisor.
    Report => "report",
    /// Mail to the client was refused for good; to the handler (or the
    /// supervisors), to reach the client another way.
    Undeliverable => "undeliverable",
}

/// A rendered message: one-line subject, plain text and HTML bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The three parts of every template, as file suffixes.
const PARTS: [&str; 3] = ["subject.txt", "txt", "html"];

macro_rules! builtin_files {
    ($($lang:literal : [$($name:literal),+ $(,)?]),+ $(,)?) => {
        &[$($(
            (
                concat!($lang, "/", $name, ".subject.txt"),
                include_str!(concat!("../../../templates/", $lang, "/", $name, ".subject.txt")),
            ),
            (
                concat!($lang, "/", $name, ".txt"),
                include_str!(concat!("../../../templates/", $lang, "/", $name, ".txt")),
            ),
            (
                concat!($lang, "/", $name, ".html"),
                include_str!(concat!("../../../templates/", $lang, "/", $name, ".html")),
            ),
        )+)+]
    };
}

/// Built-in templates: (relative path, content).
const BUILTIN: &[(&str, &str)] = builtin_files!(
    "nl": ["ack", "handler_new", "handler_released", "triage", "unassigned", "client_reply", "regulation", "regulation_paper", "to_client", "command_result", "reminder", "escalation", "digest", "health", "report", "undeliverable"],
    "en": ["ack", "handler_new", "handler_released", "triage", "unassigned", "client_reply", "regulation", "regulation_paper", "to_client", "command_result", "reminder", "escalation", "digest", "health", "report", "undeliverable"],
);

/// Renders outgoing mail. Cheap to share (`&self` only); build it once.
pub struct Renderer {
    tera: tera::Tera,
    /// Where each template came from, for error messages.
    origin: HashMap<String, String>,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("templates", &self.origin.len())
            .finish()
    }
}

impl Renderer {
    /// Loads the built-in templates; when `override_dir` is given, any file
    /// with the same relative path there (e.g. `nl/ack.txt`) replaces the
    /// built-in one. Errors name the offending file.
    pub fn new(override_dir: Option<&Path>) -> anyhow::Result<Self> {
        let mut tera = tera::Tera::default();
        tera.autoescape_on(vec![".html"]);
        tera.set_escape_fn(escape_html);
        tera.register_filter("long_date", filter_long_date);
        tera.register_filter("long_date_with_weekday", filter_long_date_with_weekday);

        if let Some(dir) = override_dir {
            if !dir.is_dir() {
                bail!(
                    "template override directory {} does not exist",
                    dir.display()
                );
            }
        }

        let mut origin = HashMap::new();
        for (rel, builtin) in BUILTIN {
            let over: Option<PathBuf> = override_dir.map(|d| d.join(rel)).filter(|p| p.is_file());
            let (content, from) = match over {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading template {}", path.display()))?;
                    (text, path.display().to_string())
                }
                None => ((*builtin).to_string(), format!("built-in templates/{rel}")),
            };
            tera.add_raw_template(rel, &content)
                .map_err(|e| anyhow!("template {from}: {}", error_chain(&e)))?;
            origin.insert((*rel).to_string(), from);
        }
        Ok(Renderer { tera, origin })
    }

    /// Renders `ctx`'s template in `lang`; `lang` is added to the context.
    /// The subject is trimmed and any line breaks become single spaces, so
    /// it is always safe as a header value.
    pub fn render<C: MailContext>(&self, lang: Lang, ctx: &C) -> anyhow::Result<Rendered> {
        let t = C::TEMPLATE;
        let value = serde_json::to_value(ctx)
            .map_err(|e| anyhow!("context for template {}/{}: {e}", lang.as_str(), t.name()))?;
        self.render_value(lang, t, value)
    }

    /// Renders template `t` in `lang` from a context that must be a JSON
    /// object; `lang` is added to it when absent.
    fn render_value(
        &self,
        lang: Lang,
        t: Template,
        ctx: serde_json::Value,
    ) -> anyhow::Result<Rendered> {
        let mut context = match ctx {
            serde_json::Value::Object(_) => tera::Context::from_value(ctx)
                .map_err(|e| anyhow!("template context: {}", error_chain(&e)))?,
            _ => bail!(
                "context for template {}/{} must be a JSON object",
                lang.as_str(),
                t.name()
            ),
        };
        if !context.contains_key("lang") {
            context.insert("lang", lang.as_str());
        }
        let [subject, text, html] = PARTS.map(|part| {
            let name = format!("{}/{}.{part}", lang.as_str(), t.name());
            self.tera.render(&name, &context).map_err(|e| {
                let from = self.origin.get(&name).map(String::as_str).unwrap_or("?");
                anyhow!("rendering template {name} ({from}): {}", error_chain(&e))
            })
        });
        Ok(Rendered {
            subject: one_line(&subject?),
            text: tidy_text(&text?),
            html: html?,
        })
    }
}

/// Tera's top-level error says little ("Failed to render 'x'"); the cause
/// (e.g. the missing variable) is in its source chain.
fn error_chain(e: &tera::Error) -> String {
    let mut out = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let msg = s.to_string();
        if !out.contains(&msg) {
            let _ = write!(out, ": {msg}");
        }
        src = s.source();
    }
    out
}

/// HTML escaping for element content and quoted attributes. Unlike Tera's
/// default it leaves `/` alone, so URLs stay readable in the source.
fn escape_html(input: &str) -> String {
    let mut out = String::with_capacity(input.len() + input.len() / 8);
    for c in input.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            _ => out.push(c),
        }
    }
    out
}

/// Subject: trimmed, all whitespace runs (including line breaks) → one space.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Plain text: no trailing spaces, at most one blank line in a row, no
/// leading blank lines, exactly one final newline.
fn tidy_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank_run = 0usize;
    for line in s.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() && blank_run > 0 {
            out.push('\n');
        }
        blank_run = 0;
        out.push_str(line);
        out.push('\n');
    }
    out
}

const MONTHS_NL: [&str; 12] = [
    "januari",
    "februari",
    "maart",
    "april",
    "mei",
    "juni",
    "juli",
    "augustus",
    "september",
    "oktober",
    "november",
    "december",
];
const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

pub fn month_name(lang: Lang, month: i8) -> &'static str {
    let names = match lang {
        Lang::Nl => &MONTHS_NL,
        Lang::En => &MONTHS_EN,
    };
    // jiff guarantees 1..=12; fall back to January rather than panic.
    let i = usize::try_from(month - 1).unwrap_or(0);
    names.get(i).copied().unwrap_or(names[0])
}

fn weekday_name(lang: Lang, w: Weekday) -> &'static str {
    match (lang, w) {
        (Lang::Nl, Weekday::Monday) => "maandag",
        (Lang::Nl, Weekday::Tuesday) => "dinsdag",
        (Lang::Nl, Weekday::Wednesday) => "woensdag",
        (Lang::Nl, Weekday::Thursday) => "donderdag",
        (Lang::Nl, Weekday::Friday) => "vrijdag",
        (Lang::Nl, Weekday::Saturday) => "zaterdag",
        (Lang::Nl, Weekday::Sunday) => "zondag",
        (Lang::En, Weekday::Monday) => "Monday",
        (Lang::En, Weekday::Tuesday) => "Tuesday",
        (Lang::En, Weekday::Wednesday) => "Wednesday",
        (Lang::En, Weekday::Thursday) => "Thursday",
        (Lang::En, Weekday::Friday) => "Friday",
        (Lang::En, Weekday::Saturday) => "Saturday",
        (Lang::En, Weekday::Sunday) => "Sunday",
    }
}

/// "21 december 2026" (nl) / "21 December 2026" (en).
pub fn long_date(lang: Lang, d: Date) -> String {
    format!("{} {} {}", d.day(), month_name(lang, d.month()), d.year())
}

/// "maandag 21 december 2026" (nl) / "Monday 21 December 2026" (en).
pub fn long_date_with_weekday(lang: Lang, d: Date) -> String {
    format!("{} {}", weekday_name(lang, d.weekday()), long_date(lang, d))
}

fn filter_args(
    filter: &str,
    value: &tera::Value,
    args: &HashMap<String, tera::Value>,
) -> tera::Result<(Lang, Date)> {
    let raw = value
        .as_str()
        .ok_or_else(|| tera::Error::msg(format!("filter {filter} expects a YYYY-MM-DD string")))?;
    let date: Date = raw
        .trim()
        .parse()
        .map_err(|e| tera::Error::msg(format!("filter {filter}: invalid date {raw:?}: {e}")))?;
    let lang = match args.get("lang").and_then(|v| v.as_str()) {
        Some(l) => l
            .parse::<Lang>()
            .map_err(|e| tera::Error::msg(format!("filter {filter}: {e}")))?,
        None => {
            return Err(tera::Error::msg(format!(
                "filter {filter} needs a lang argument, e.g. {filter}(lang=lang)"
            )))
        }
    };
    Ok((lang, date))
}

fn filter_long_date(
    value: &tera::Value,
    args: &HashMap<String, tera::Value>,
) -> tera::Result<tera::Value> {
    let (lang, d) = filter_args("long_date", value, args)?;
    Ok(tera::Value::String(long_date(lang, d)))
}

fn filter_long_date_with_weekday(
    value: &tera::Value,
    args: &HashMap<String, tera::Value>,
) -> tera::Result<tera::Value> {
    let (lang, d) = filter_args("long_date_with_weekday", value, args)?;
    Ok(tera::Value::String(long_date_with_weekday(lang, d)))
}

#[cfg(test)]
mod tests;
