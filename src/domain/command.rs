//! Commands by email (design.md section 5): lines at the top of a staff
//! answer, in Dutch with English aliases, and the rules for what each may do
//! to a case. Pure code: the caller authenticates the sender and applies the
//! outcome in one transaction.

use std::fmt;

use super::types::{CaseRef, Status};

/// One command. Arguments are already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `/voorstel`: the answer is the art. 7 proposal.
    Proposal,
    /// `/afwijzing`: the answer is a reasoned rejection (art. 7).
    Rejection,
    /// `/verleng N reden`: N more working days, the client is told why (art. 6).
    Extend { days: u32, reason: String },
    /// `/akkoord`: the client agreed with the proposal (art. 7).
    Agreed,
    /// `/extern`: the client goes to the external complaints body (art. 8).
    External,
    /// `/toewijzen NAAM`: another handler takes the case (art. 6).
    Assign { who: String },
    /// `/intern`: an internal note, never relayed.
    Internal,
    /// `/klacht`: a triage item becomes a case.
    Complaint,
    /// `/geen-klacht`: a triage item is dismissed.
    NotComplaint,
    /// `/sluit [reden]`: the case is closed.
    Close { reason: String },
    /// `/heropen [reden]`: a closed case is opened again.
    Reopen { reason: String },
}

/// The longest extension one command may give. Art. 6 speaks of "more
/// time", not of a new procedure; beyond this a supervisor should look.
pub const MAX_EXTENSION_DAYS: u32 = 60;

impl Command {
    /// The canonical (Dutch) spelling, as written in confirmations and the
    /// timeline.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Proposal => "/voorstel",
            Command::Rejection => "/afwijzing",
            Command::Extend { .. } => "/verleng",
            Command::Agreed => "/akkoord",
            Command::External => "/extern",
            Command::Assign { .. } => "/toewijzen",
            Command::Internal => "/intern",
            Command::Complaint => "/klacht",
            Command::NotComplaint => "/geen-klacht",
            Command::Close { .. } => "/sluit",
            Command::Reopen { .. } => "/heropen",
        }
    }

    /// May the text of this answer go to the client? Assignment and triage
    /// decisions are internal: their text is a note for colleagues.
    pub fn relays_text(&self) -> bool {
        !matches!(
            self,
            Command::Internal | Command::Assign { .. } | Command::Complaint | Command::NotComplaint
        )
    }

    /// Does this command need text for the client (the proposal or the
    /// reasons themselves)?
    pub fn needs_text(&self) -> bool {
        matches!(self, Command::Proposal | Command::Rejection)
    }

    /// The status after this command, or why it cannot be given now.
    /// `has_handler`: whether the case has a handler (for `/heropen`).
    pub fn next_status(&self, current: Status, has_handler: bool) -> Result<Status, StateError> {
        use Status::*;
        let open_case = matches!(current, Received | Acknowledged | InProgress);
        let answered = matches!(current, Proposed | Rejected);
        let refuse = || {
            Err(StateError {
                command: self.name(),
                status: current,
            })
        };
        match self {
            Command::Proposal if open_case || answered => Ok(Proposed),
            Command::Rejection if open_case || answered => Ok(Rejected),
            Command::Extend { .. } if open_case => Ok(progressed(current)),
            Command::Agreed if answered => Ok(Resolved),
            Command::External if open_case || answered || current == Resolved => Ok(External),
            Command::Assign { .. } if open_case || answered => Ok(current),
            Command::Internal => Ok(current),
            Command::Complaint if current == Triage => Ok(Received),
            Command::NotComplaint if current == Triage => Ok(Closed),
            Command::Close { .. } if current != Closed => Ok(Closed),
            Command::Reopen { .. } if current == Closed && has_handler => Ok(InProgress),
            Command::Reopen { .. } if current == Closed => Ok(Triage),
            _ => refuse(),
        }
    }
}

/// The status after a plain answer (no command) relayed to the client.
pub fn after_answer(current: Status) -> Status {
    progressed(current)
}

/// A case being worked on is `in_progress` once someone acted on it.
fn progressed(current: Status) -> Status {
    match current {
        Status::Received | Status::Acknowledged => Status::InProgress,
        s => s,
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Extend { days, reason } => write!(f, "/verleng {days} {reason}"),
            Command::Assign { who } => write!(f, "/toewijzen {who}"),
            Command::Close { reason } | Command::Reopen { reason } if !reason.is_empty() => {
                write!(f, "{} {reason}", self.name())
            }
            c => f.write_str(c.name()),
        }
    }
}

/// A command that does not fit the case's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateError {
    pub command: &'static str,
    pub status: Status,
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hint = match self.command {
            "/akkoord" => "alleen na /voorstel of /afwijzing",
            "/verleng" => "alleen zolang er nog geen antwoord is gegeven",
            "/klacht" | "/geen-klacht" => "alleen voor een melding die op beoordeling wacht",
            "/heropen" => "alleen voor een gesloten zaak",
            "/sluit" => "de zaak is al gesloten",
            _ => "niet in deze fase",
        };
        write!(
            f,
            "{} kan niet bij status '{}' ({hint})",
            self.command, self.status
        )
    }
}

/// Why the command lines could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    Unknown(String),
    BadNumber {
        command: &'static str,
        given: String,
    },
    Missing {
        command: &'static str,
        what: &'static str,
    },
    TooMany(Vec<String>),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Unknown(c) => write!(
                f,
                "onbekende opdracht {c}; bekend zijn /voorstel, /afwijzing, /verleng N reden, /akkoord, \
                 /extern, /toewijzen NAAM, /intern, /klacht, /geen-klacht, /sluit en /heropen"
            ),
            ParseError::BadNumber { command, given } => write!(
                f,
                "{command}: '{given}' is geen geldig aantal werkdagen (1 tot en met {MAX_EXTENSION_DAYS})"
            ),
            ParseError::Missing { command, what } => write!(f, "{command}: {what} ontbreekt"),
            ParseError::TooMany(cs) => write!(
                f,
                "één opdracht per bericht, dit bericht heeft er {}: {}",
                cs.len(),
                cs.join(", ")
            ),
        }
    }
}

/// The command lines of an answer and the text below them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub command: Option<Command>,
    /// The answer without its command lines.
    pub text: String,
}

/// Reads the command at the top of an answer's new text. Blank lines before
/// it are skipped; every line starting with `/` and a letter up to the first
/// other line is a command line. One command per message: several are
/// refused, so nobody has to guess in which order they apply.
pub fn parse(new_text: &str) -> Result<Parsed, ParseError> {
    let lines: Vec<&str> = new_text.lines().collect();
    let mut i = 0;
    while i < lines.len() && lines[i].trim().is_empty() {
        i += 1;
    }
    let mut found = Vec::new();
    while i < lines.len() && is_command_line(lines[i]) {
        found.push(lines[i].trim());
        i += 1;
    }
    let text = lines[i..].join("\n").trim().to_string();
    if found.len() > 1 {
        return Err(ParseError::TooMany(
            found
                .iter()
                .map(|l| l.split_whitespace().next().unwrap_or(l).to_string())
                .collect(),
        ));
    }
    let command = found.first().map(|l| parse_line(l)).transpose()?;
    Ok(Parsed { command, text })
}

fn is_command_line(line: &str) -> bool {
    let t = line.trim_start();
    let mut chars = t.chars();
    chars.next() == Some('/') && chars.next().is_some_and(|c| c.is_alphabetic())
}

fn parse_line(line: &str) -> Result<Command, ParseError> {
    let body = line.trim().trim_start_matches('/');
    let (word, rest) = match body.split_once(char::is_whitespace) {
        Some((w, r)) => (w, r.trim()),
        None => (body, ""),
    };
    let word = word.trim_end_matches([':', '.', ',']).to_lowercase();
    let cmd = match word.as_str() {
        "voorstel" | "proposal" | "propose" => Command::Proposal,
        "afwijzing" | "afwijzen" | "rejection" | "reject" => Command::Rejection,
        "verleng" | "verlenging" | "extend" | "extension" => {
            let (n, reason) = match rest.split_once(char::is_whitespace) {
                Some((n, r)) => (n, r.trim()),
                None => (rest, ""),
            };
            if n.is_empty() {
                return Err(ParseError::Missing {
                    command: "/verleng",
                    what: "het aantal werkdagen",
                });
            }
            let days = n
                .parse::<u32>()
                .ok()
                .filter(|d| (1..=MAX_EXTENSION_DAYS).contains(d))
                .ok_or_else(|| ParseError::BadNumber {
                    command: "/verleng",
                    given: n.to_string(),
                })?;
            if reason.is_empty() {
                return Err(ParseError::Missing {
                    command: "/verleng",
                    what: "de reden (de cliënt krijgt die te lezen, art. 6)",
                });
            }
            Command::Extend {
                days,
                reason: reason.to_string(),
            }
        }
        "akkoord" | "agreed" | "agree" | "accepted" => Command::Agreed,
        "extern" | "external" => Command::External,
        "toewijzen" | "wijs-toe" | "assign" | "reassign" => {
            if rest.is_empty() {
                return Err(ParseError::Missing {
                    command: "/toewijzen",
                    what: "de naam van de nieuwe behandelaar",
                });
            }
            Command::Assign {
                who: rest.to_string(),
            }
        }
        "intern" | "internal" | "notitie" | "note" => Command::Internal,
        "klacht" | "complaint" => Command::Complaint,
        "geen-klacht" | "geenklacht" | "no-complaint" | "not-a-complaint" | "dismiss" => {
            Command::NotComplaint
        }
        "sluit" | "sluiten" | "close" => Command::Close {
            reason: rest.to_string(),
        },
        "heropen" | "heropenen" | "reopen" => Command::Reopen {
            reason: rest.to_string(),
        },
        _ => {
            return Err(ParseError::Unknown(format!(
                "/{}",
                body.split_whitespace().next().unwrap_or_default()
            )))
        }
    };
    Ok(cmd)
}

/// One decision in an answer to the supervisors' digest: a triage item
/// and what becomes of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriageDecision {
    pub reference: CaseRef,
    /// `Command::Complaint` or `Command::NotComplaint`.
    pub command: Command,
}

/// Reads the decisions in an answer to the digest: every command line of
/// the new text, one per triage item, like `/klacht KL-2026-0003` or
/// `/geen-klacht KL-2026-0004` (the reference may be in brackets). Each
/// line gives its own result, so one bad line does not stop the others:
/// `(the line as written, the decision or why it cannot be read)`.
pub fn parse_triage_decisions(new_text: &str) -> Vec<(String, Result<TriageDecision, String>)> {
    new_text
        .lines()
        .filter(|l| is_command_line(l))
        .map(|l| {
            let line = l.trim().to_string();
            let decision = parse_line(&line)
                .map_err(|e| e.to_string())
                .and_then(|command| match command {
                    Command::Complaint | Command::NotComplaint => Ok(command),
                    other => Err(format!(
                        "{} kan niet in een antwoord op het dagoverzicht; daar gelden alleen \
                         /klacht KENMERK en /geen-klacht KENMERK",
                        other.name()
                    )),
                })
                .and_then(|command| {
                    let given = line.split_whitespace().nth(1).unwrap_or_default();
                    let reference = given
                        .trim_matches(|c: char| "[]().,:;".contains(c))
                        .parse::<CaseRef>()
                        .map_err(|_| {
                            format!(
                                "{}: het kenmerk ontbreekt of is onleesbaar (schrijf {} KL-JJJJ-NNNN)",
                                command.name(),
                                command.name()
                            )
                        })?;
                    Ok(TriageDecision { reference, command })
                });
            (line, decision)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_answer_decides_each_triage_item_on_its_own_line() {
        let got = parse_triage_decisions(
            "/klacht KL-2026-0003\n/geen-klacht [KL-2026-0004]\n\nDank!\n/voorstel KL-2026-0005\n/klacht\n/klacht KL-26-1",
        );
        let r = |s: &str| s.parse::<CaseRef>().unwrap();
        assert_eq!(got.len(), 5);
        assert_eq!(
            got[0].1,
            Ok(TriageDecision {
                reference: r("KL-2026-0003"),
                command: Command::Complaint
            })
        );
        assert_eq!(
            got[1].1,
            Ok(TriageDecision {
                reference: r("KL-2026-0004"),
                command: Command::NotComplaint
            })
        );
        assert!(got[2].1.as_ref().unwrap_err().contains("/voorstel"));
        assert!(got[3].1.as_ref().unwrap_err().contains("kenmerk"));
        assert!(got[4].1.as_ref().unwrap_err().contains("kenmerk"));
        assert_eq!(got[4].0, "/klacht KL-26-1");
        assert!(parse_triage_decisions("Geen opdrachten hier.\n").is_empty());
    }

    fn cmd(s: &str) -> Option<Command> {
        parse(s).unwrap().command
    }

    #[test]
    fn no_command_leaves_the_text() {
        let p = parse("\n\nBeste mevrouw,\n\n/voorstel staat hier niet bovenaan.\n").unwrap();
        assert_eq!(p.command, None);
        assert_eq!(
            p.text,
            "Beste mevrouw,\n\n/voorstel staat hier niet bovenaan."
        );
    }

    #[test]
    fn dutch_and_english_names() {
        for (a, b) in [
            ("/voorstel", "/proposal"),
            ("/afwijzing", "/reject"),
            ("/akkoord", "/agreed"),
            ("/extern", "/external"),
            ("/intern", "/internal"),
            ("/klacht", "/complaint"),
            ("/geen-klacht", "/no-complaint"),
            ("/sluit", "/close"),
            ("/heropen", "/reopen"),
        ] {
            assert_eq!(cmd(a), cmd(b), "{a} and {b}");
            assert!(cmd(a).is_some());
        }
        assert_eq!(cmd("/VOORSTEL"), Some(Command::Proposal));
        assert_eq!(cmd("  /akkoord.  "), Some(Command::Agreed));
    }

    #[test]
    fn command_then_text() {
        let p = parse("/voorstel\nBeste mevrouw Jansen,\n\nWij bieden u aan...\n").unwrap();
        assert_eq!(p.command, Some(Command::Proposal));
        assert_eq!(p.text, "Beste mevrouw Jansen,\n\nWij bieden u aan...");
    }

    #[test]
    fn extension_needs_a_number_in_range_and_a_reason() {
        assert_eq!(
            cmd("/verleng 10 de coach is twee weken ziek"),
            Some(Command::Extend {
                days: 10,
                reason: "de coach is twee weken ziek".into()
            })
        );
        assert_eq!(
            cmd("/extend 5 waiting for the trainer's account"),
            Some(Command::Extend {
                days: 5,
                reason: "waiting for the trainer's account".into()
            })
        );
        for bad in [
            "/verleng tien dagen",
            "/verleng 0 x",
            "/verleng 61 x",
            "/verleng -3 x",
            "/verleng 1.5 x",
        ] {
            assert!(
                matches!(parse(bad), Err(ParseError::BadNumber { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            parse("/verleng"),
            Err(ParseError::Missing { what, .. }) if what.contains("werkdagen")
        ));
        assert!(matches!(
            parse("/verleng 5"),
            Err(ParseError::Missing { what, .. }) if what.contains("reden")
        ));
    }

    #[test]
    fn assignment_needs_a_name() {
        assert_eq!(
            cmd("/toewijzen Carla Jansen"),
            Some(Command::Assign {
                who: "Carla Jansen".into()
            })
        );
        assert!(matches!(
            parse("/toewijzen  "),
            Err(ParseError::Missing { .. })
        ));
    }

    #[test]
    fn unknown_and_several_commands_are_refused() {
        let e = parse("/verlengen 5 x").unwrap_err();
        assert_eq!(e, ParseError::Unknown("/verlengen".into()));
        assert!(e.to_string().contains("onbekende opdracht /verlengen"));
        let e = parse("/voorstel\n/sluit\ntekst").unwrap_err();
        assert!(matches!(&e, ParseError::TooMany(c) if c == &["/voorstel", "/sluit"]));
    }

    #[test]
    fn a_path_or_a_date_is_not_a_command() {
        assert_eq!(cmd("/ niet\nx"), None);
        assert_eq!(cmd("/2026/11 sessie"), None);
        assert_eq!(cmd("Zie /voorstel"), None);
    }

    #[test]
    fn state_rules_follow_articles_6_to_8() {
        use Status::*;
        let p = Command::Proposal;
        assert_eq!(p.next_status(Acknowledged, true), Ok(Proposed));
        assert_eq!(p.next_status(Rejected, true), Ok(Proposed));
        assert!(p.next_status(Triage, false).is_err());
        assert!(p.next_status(Closed, true).is_err());
        assert_eq!(Command::Agreed.next_status(Proposed, true), Ok(Resolved));
        let e = Command::Agreed.next_status(InProgress, true).unwrap_err();
        assert!(e
            .to_string()
            .contains("/akkoord kan niet bij status 'in_progress'"));
        let ext = Command::Extend {
            days: 5,
            reason: "r".into(),
        };
        assert_eq!(ext.next_status(Acknowledged, true), Ok(InProgress));
        assert!(ext.next_status(Proposed, true).is_err());
        assert_eq!(Command::External.next_status(Rejected, true), Ok(External));
        assert_eq!(Command::Complaint.next_status(Triage, false), Ok(Received));
        assert!(Command::Complaint.next_status(InProgress, true).is_err());
        assert_eq!(Command::NotComplaint.next_status(Triage, false), Ok(Closed));
        let close = Command::Close {
            reason: String::new(),
        };
        assert_eq!(close.next_status(Resolved, true), Ok(Closed));
        assert!(close.next_status(Closed, true).is_err());
        let reopen = Command::Reopen {
            reason: String::new(),
        };
        assert_eq!(reopen.next_status(Closed, true), Ok(InProgress));
        assert_eq!(reopen.next_status(Closed, false), Ok(Triage));
        assert!(reopen.next_status(InProgress, true).is_err());
        assert_eq!(Command::Internal.next_status(Closed, true), Ok(Closed));
        assert_eq!(after_answer(Received), InProgress);
        assert_eq!(after_answer(Proposed), Proposed);
    }

    #[test]
    fn only_answers_reach_the_client() {
        assert!(Command::Proposal.relays_text());
        assert!(!Command::Internal.relays_text());
        assert!(!Command::Assign { who: "x".into() }.relays_text());
        assert!(!Command::Complaint.relays_text());
        assert!(Command::Proposal.needs_text());
        assert!(!Command::Agreed.needs_text());
    }
}
