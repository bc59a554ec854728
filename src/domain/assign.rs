//! Independent handler assignment (regulation article 6: "beoordeeld door een
//! onafhankelijke medewerker, anders dan degene op wie de klacht betrekking
//! heeft"). Pure: the roster and the open-case counts come in.

use super::types::EmailAddress;

/// One staff member who could handle a case.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub name: &'a str,
    pub email: &'a EmailAddress,
    /// May handle complaints.
    pub handler: bool,
    /// Supervisor: receives escalations, handles when no handler is independent.
    pub supervisor: bool,
    /// Cases currently open with this person as handler.
    pub open_cases: u32,
}

/// Who handles a new complaint, and why (the reason goes to the case
/// timeline; it names counts, never the persons concerned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignment {
    Handler { email: EmailAddress, reason: String },
    Supervisor { email: EmailAddress, reason: String },
    Nobody { reason: String },
}

impl Assignment {
    /// The assigned address, if anyone was assigned.
    pub fn email(&self) -> Option<&EmailAddress> {
        match self {
            Assignment::Handler { email, .. } | Assignment::Supervisor { email, .. } => Some(email),
            Assignment::Nobody { .. } => None,
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            Assignment::Handler { reason, .. }
            | Assignment::Supervisor { reason, .. }
            | Assignment::Nobody { reason } => reason,
        }
    }
}

/// The least-loaded candidate (first in roster order on a tie), and whether
/// it was a tie.
fn least_loaded<'c, 'a>(pool: &[&'c Candidate<'a>]) -> Option<(&'c Candidate<'a>, bool)> {
    let mut best: Option<&Candidate> = None;
    for c in pool {
        if best.is_none_or(|b| c.open_cases < b.open_cases) {
            best = Some(c);
        }
    }
    let best = best?;
    let tied = pool
        .iter()
        .filter(|c| c.open_cases == best.open_cases)
        .count()
        > 1;
    Some((best, tied))
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

/// Fewest open cases among handlers not concerned (ties: roster order). If
/// every handler is concerned (or there are none), the supervisor with the
/// fewest open cases who is not concerned. Else nobody. Never returns a
/// concerned person.
pub fn pick_handler(candidates: &[Candidate], concerned: &[EmailAddress]) -> Assignment {
    let is_concerned = |c: &Candidate| concerned.iter().any(|e| e == c.email);
    let handlers: Vec<&Candidate> = candidates.iter().filter(|c| c.handler).collect();
    let independent: Vec<&Candidate> = handlers
        .iter()
        .copied()
        .filter(|c| !is_concerned(c))
        .collect();
    if let Some((c, tied)) = least_loaded(&independent) {
        let tie = if tied {
            "; gelijke stand, eerste in de lijst"
        } else {
            ""
        };
        return Assignment::Handler {
            email: c.email.clone(),
            reason: format!(
                "minst openstaande zaken ({}) onder {}{tie}; niet betrokken bij de klacht",
                c.open_cases,
                plural(
                    independent.len(),
                    "onafhankelijke behandelaar",
                    "onafhankelijke behandelaars"
                ),
            ),
        };
    }
    let why_no_handler = if handlers.is_empty() {
        "geen behandelaars ingesteld".to_string()
    } else if handlers.len() == 1 {
        "de enige behandelaar is betrokken bij de klacht".to_string()
    } else {
        format!(
            "alle {} behandelaars zijn betrokken bij de klacht",
            handlers.len()
        )
    };
    let supervisors: Vec<&Candidate> = candidates.iter().filter(|c| c.supervisor).collect();
    let free_supervisors: Vec<&Candidate> = supervisors
        .iter()
        .copied()
        .filter(|c| !is_concerned(c))
        .collect();
    if let Some((c, tied)) = least_loaded(&free_supervisors) {
        let tie = if tied {
            "; gelijke stand, eerste in de lijst"
        } else {
            ""
        };
        return Assignment::Supervisor {
            email: c.email.clone(),
            reason: format!(
                "{why_no_handler}; leidinggevende met minst openstaande zaken ({}) onder {}{tie}; niet betrokken bij de klacht",
                c.open_cases,
                plural(free_supervisors.len(), "onafhankelijke leidinggevende", "onafhankelijke leidinggevenden"),
            ),
        };
    }
    let why_no_supervisor = if supervisors.is_empty() {
        "geen leidinggevenden ingesteld".to_string()
    } else if supervisors.len() == 1 {
        "de enige leidinggevende is betrokken bij de klacht".to_string()
    } else {
        format!(
            "alle {} leidinggevenden zijn betrokken bij de klacht",
            supervisors.len()
        )
    };
    Assignment::Nobody {
        reason: format!("geen onafhankelijke behandelaar: {why_no_handler}; {why_no_supervisor}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    struct Person {
        name: &'static str,
        email: EmailAddress,
        handler: bool,
        supervisor: bool,
        open: u32,
    }

    fn person(name: &'static str, handler: bool, supervisor: bool, open: u32) -> Person {
        Person {
            name,
            email: addr(&format!("{}@31solutions.test", name.to_lowercase())),
            handler,
            supervisor,
            open,
        }
    }

    fn cands(people: &[Person]) -> Vec<Candidate<'_>> {
        people
            .iter()
            .map(|p| Candidate {
                name: p.name,
                email: &p.email,
                handler: p.handler,
                supervisor: p.supervisor,
                open_cases: p.open,
            })
            .collect()
    }

    #[test]
    fn the_least_loaded_independent_handler_wins() {
        let people = [
            person("Anna", true, false, 3),
            person("Bram", true, false, 1),
            person("Carla", true, false, 2),
            person("Dirk", false, true, 0),
        ];
        let a = pick_handler(&cands(&people), &[]);
        assert_eq!(a.email(), Some(&people[1].email));
        assert!(matches!(a, Assignment::Handler { .. }));
        assert_eq!(
            a.reason(),
            "minst openstaande zaken (1) onder 3 onafhankelijke behandelaars; niet betrokken bij de klacht"
        );
        // Bram is concerned: Carla (2) beats Anna (3).
        let a = pick_handler(&cands(&people), &[addr("BRAM@31solutions.test")]);
        assert_eq!(a.email(), Some(&people[2].email));
    }

    #[test]
    fn a_tie_goes_to_the_first_in_roster_order() {
        let people = [
            person("Anna", true, false, 2),
            person("Bram", true, false, 1),
            person("Carla", true, false, 1),
        ];
        let a = pick_handler(&cands(&people), &[]);
        assert_eq!(a.email(), Some(&people[1].email));
        assert!(a.reason().contains("gelijke stand"), "{}", a.reason());
    }

    #[test]
    fn a_complaint_about_the_only_handler_goes_to_a_supervisor() {
        let people = [
            person("Anna", true, false, 0),
            person("Carla", false, true, 4),
            person("Dirk", false, true, 2),
        ];
        let a = pick_handler(&cands(&people), &[people[0].email.clone()]);
        match &a {
            Assignment::Supervisor { email, reason } => {
                assert_eq!(email, &people[2].email);
                assert!(
                    reason.starts_with("de enige behandelaar is betrokken bij de klacht"),
                    "{reason}"
                );
                assert!(reason.contains("(2)"), "{reason}");
            }
            other => panic!("expected a supervisor, got {other:?}"),
        }
    }

    #[test]
    fn without_handlers_a_supervisor_handles() {
        let people = [person("Dirk", false, true, 5)];
        let a = pick_handler(&cands(&people), &[]);
        assert!(matches!(a, Assignment::Supervisor { .. }));
        assert!(a.reason().starts_with("geen behandelaars ingesteld"));
    }

    #[test]
    fn nobody_independent_means_nobody() {
        let people = [
            person("Anna", true, true, 0),
            person("Bram", true, false, 0),
        ];
        let concerned = [people[0].email.clone(), people[1].email.clone()];
        let a = pick_handler(&cands(&people), &concerned);
        assert_eq!(
            a,
            Assignment::Nobody {
                reason: "geen onafhankelijke behandelaar: alle 2 behandelaars zijn betrokken bij de klacht; \
                         de enige leidinggevende is betrokken bij de klacht"
                    .to_string()
            }
        );
        assert_eq!(a.email(), None);
        let empty = pick_handler(&[], &[]);
        assert_eq!(
            empty.reason(),
            "geen onafhankelijke behandelaar: geen behandelaars ingesteld; geen leidinggevenden ingesteld"
        );
    }

    #[test]
    fn a_person_who_is_handler_and_supervisor_is_considered_as_handler_first() {
        let people = [
            person("Anna", true, true, 1),
            person("Dirk", false, true, 0),
        ];
        let a = pick_handler(&cands(&people), &[]);
        assert!(matches!(a, Assignment::Handler { .. }));
        assert_eq!(a.email(), Some(&people[0].email));
    }

    #[test]
    fn never_a_concerned_person_for_any_subset_of_a_four_person_roster() {
        // Every role mix and every concerned subset: the pick is never concerned,
        // and somebody is picked whenever an independent handler or supervisor exists.
        let roles = [(true, false), (false, true), (true, true), (false, false)];
        let names = ["Anna", "Bram", "Carla", "Dirk"];
        for role_mask in 0..(roles.len().pow(4)) {
            let people: Vec<Person> = (0..4)
                .map(|k| {
                    let (h, s) = roles[(role_mask / roles.len().pow(k as u32)) % roles.len()];
                    person(names[k], h, s, (k as u32 * 7 + role_mask as u32) % 3)
                })
                .collect();
            let cs = cands(&people);
            for subset in 0u32..16 {
                let concerned: Vec<EmailAddress> = (0..4)
                    .filter(|k| subset & (1 << k) != 0)
                    .map(|k| people[k].email.clone())
                    .collect();
                let a = pick_handler(&cs, &concerned);
                if let Some(e) = a.email() {
                    assert!(!concerned.contains(e), "picked concerned {e} ({a:?})");
                }
                let free = |f: fn(&Person) -> bool| {
                    people.iter().any(|p| f(p) && !concerned.contains(&p.email))
                };
                match &a {
                    Assignment::Handler { .. } => assert!(free(|p| p.handler)),
                    Assignment::Supervisor { .. } => {
                        assert!(!free(|p| p.handler) && free(|p| p.supervisor))
                    }
                    Assignment::Nobody { .. } => {
                        assert!(!free(|p| p.handler) && !free(|p| p.supervisor))
                    }
                }
            }
        }
    }
}
