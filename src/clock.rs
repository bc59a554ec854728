//! The one source of "now". Passed in, never called deep inside, so deadlines
//! can be tested over months with `--now`.

use jiff::Timestamp;

#[derive(Clone, Debug)]
pub struct Clock {
    /// Simulated start and the real instant it was taken; None = real time.
    offset: Option<(Timestamp, std::time::Instant)>,
}

impl Clock {
    pub fn system() -> Clock {
        Clock { offset: None }
    }

    /// A clock that starts at `at` and then runs at normal speed.
    pub fn starting_at(at: Timestamp) -> Clock {
        Clock {
            offset: Some((at, std::time::Instant::now())),
        }
    }

    pub fn now(&self) -> Timestamp {
        match self.offset {
            None => Timestamp::now(),
            Some((at, real)) => {
                let elapsed = real.elapsed();
                at.checked_add(jiff::SignedDuration::try_from(elapsed).unwrap_or_default())
                    .unwrap_or(at)
            }
        }
    }
}

/// Database form of an instant: UTC, whole seconds, fixed width, sortable.
pub fn db_time(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn parse_db_time(s: &str) -> Option<Timestamp> {
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_times_are_fixed_width_and_round_trip() {
        let t: Timestamp = "2026-11-23T22:45:01.987Z".parse().unwrap();
        let s = db_time(t);
        assert_eq!(s, "2026-11-23T22:45:01Z");
        assert_eq!(parse_db_time(&s).unwrap().as_second(), t.as_second());
    }

    #[test]
    fn a_simulated_clock_starts_where_it_is_told() {
        let t: Timestamp = "2027-04-27T09:00:00Z".parse().unwrap();
        let c = Clock::starting_at(t);
        assert!(c.now() >= t && c.now().as_second() - t.as_second() < 5);
    }
}
