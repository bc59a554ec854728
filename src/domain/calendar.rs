//! Working days for the regulation's deadlines (design.md section 6).
//!
//! Monday to Friday count, minus Dutch public holidays and the organisation's
//! configured closure days. Day 1 of a term is the first working day after
//! receipt. Pure: dates come in, dates go out, no clock.

use std::collections::BTreeSet;

use jiff::civil::{Date, Weekday};

/// Whether Bevrijdingsdag (5 May) is a day off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LiberationDay {
    /// Never a day off.
    Never,
    /// A day off in lustrum years only (2025, 2030, …): most collective agreements.
    #[default]
    Lustrum,
    /// A day off every year.
    EveryYear,
}

/// The organisation's working-day calendar.
#[derive(Clone, Debug)]
pub struct Calendar {
    good_friday_off: bool,
    liberation_day: LiberationDay,
    closures: BTreeSet<Date>,
}

/// Name used for a configured closure day.
const CLOSURE: &str = "sluitingsdag";

impl Calendar {
    pub fn new(
        good_friday_off: bool,
        liberation_day: LiberationDay,
        closures: impl IntoIterator<Item = Date>,
    ) -> Self {
        Calendar {
            good_friday_off,
            liberation_day,
            closures: closures.into_iter().collect(),
        }
    }

    /// Goede Vrijdag is not a day off, Bevrijdingsdag in lustrum years only,
    /// no closure days.
    pub fn dutch_default() -> Self {
        Calendar::new(false, LiberationDay::Lustrum, [])
    }

    /// The Dutch name of the public holiday on `d`, or `"sluitingsdag"` for a
    /// configured closure day; `None` on ordinary days. Weekends are not
    /// holidays (but a holiday may fall on a weekend, e.g. Koningsdag on
    /// Saturday 26 April 2025).
    pub fn holiday(&self, d: Date) -> Option<&'static str> {
        public_holiday(d, self.good_friday_off, self.liberation_day).or_else(|| {
            if self.closures.contains(&d) {
                Some(CLOSURE)
            } else {
                None
            }
        })
    }

    /// Monday to Friday and neither a holiday nor a closure day.
    pub fn is_working_day(&self, d: Date) -> bool {
        !matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday) && self.holiday(d).is_none()
    }

    /// Day 1 is the first working day AFTER `start` (`start` itself never
    /// counts, whatever day it is). `n = 0` returns `start`. Saturates at the
    /// end of the supported date range instead of failing.
    pub fn add_working_days(&self, start: Date, n: u32) -> Date {
        let mut d = start;
        let mut left = n;
        while left > 0 {
            match d.tomorrow() {
                Ok(next) => d = next,
                Err(_) => return d,
            }
            if self.is_working_day(d) {
                left -= 1;
            }
        }
        d
    }

    /// Working days in `(from, to]`; negative when `to < from` (then the
    /// working days in `(to, from]`, negated); 0 when equal.
    pub fn working_days_between(&self, from: Date, to: Date) -> i64 {
        if to < from {
            return -self.working_days_between(to, from);
        }
        let mut count = 0i64;
        let mut d = from;
        while d < to {
            match d.tomorrow() {
                Ok(next) => d = next,
                Err(_) => break,
            }
            if self.is_working_day(d) {
                count += 1;
            }
        }
        count
    }
}

impl Default for Calendar {
    fn default() -> Self {
        Calendar::dutch_default()
    }
}

fn public_holiday(
    d: Date,
    good_friday_off: bool,
    liberation: LiberationDay,
) -> Option<&'static str> {
    let (year, month, day) = (d.year(), d.month(), d.day());
    match (month, day) {
        (1, 1) => return Some("Nieuwjaarsdag"),
        (12, 25) => return Some("Eerste Kerstdag"),
        (12, 26) => return Some("Tweede Kerstdag"),
        (5, 5) => {
            let off = match liberation {
                LiberationDay::Never => false,
                LiberationDay::Lustrum => year.rem_euclid(5) == 0,
                LiberationDay::EveryYear => true,
            };
            if off {
                return Some("Bevrijdingsdag");
            }
        }
        (4, 26) | (4, 27) => {
            // Koningsdag: 27 April, or Saturday 26 April when the 27th is a Sunday.
            let sunday_27 = Date::new(year, 4, 27)
                .map(|k| k.weekday() == Weekday::Sunday)
                .unwrap_or(false);
            if (day == 27 && !sunday_27) || (day == 26 && sunday_27) {
                return Some("Koningsdag");
            }
        }
        _ => {}
    }
    // Moveable feasts, relative to Easter Sunday (always in March–June).
    if !(3..=6).contains(&month) {
        return None;
    }
    let easter = easter_sunday(year);
    let offset = day_number(d) - day_number(easter);
    match offset {
        -2 if good_friday_off => Some("Goede Vrijdag"),
        0 => Some("Eerste Paasdag"),
        1 => Some("Tweede Paasdag"),
        39 => Some("Hemelvaartsdag"),
        49 => Some("Eerste Pinksterdag"),
        50 => Some("Tweede Pinksterdag"),
        _ => None,
    }
}

/// Day of the year as a signed number, enough to compare dates within one
/// year (Easter and its feasts are in the same year as the date).
fn day_number(d: Date) -> i32 {
    i32::from(d.day_of_year())
}

/// Easter Sunday in the Gregorian calendar (the anonymous Gregorian
/// algorithm, also known as Meeus/Jones/Butcher). Years outside jiff's range
/// are clamped to it.
pub fn easter_sunday(year: i16) -> Date {
    let year = year.clamp(-9999, 9999);
    let y = i32::from(year);
    let a = y.rem_euclid(19);
    let b = y.div_euclid(100);
    let c = y.rem_euclid(100);
    let d = b.div_euclid(4);
    let e = b.rem_euclid(4);
    let f = (b + 8).div_euclid(25);
    let g = (b - f + 1).div_euclid(3);
    let h = (19 * a + b - d - g + 15).rem_euclid(30);
    let i = c.div_euclid(4);
    let k = c.rem_euclid(4);
    let l = (32 + 2 * e + 2 * i - h - k).rem_euclid(7);
    let m = (a + 11 * h + 22 * l).div_euclid(451);
    let month = (h + l - 7 * m + 114).div_euclid(31);
    let day = (h + l - 7 * m + 114).rem_euclid(31) + 1;
    // month is 3 or 4 and day 1..=31 by construction; fall back to 1 April
    // rather than panic should that ever not hold.
    let (mo, da) = (
        i8::try_from(month).unwrap_or(4),
        i8::try_from(day).unwrap_or(1),
    );
    Date::new(year, mo, da)
        .or_else(|_| Date::new(year, 4, 1))
        .unwrap_or(Date::MIN)
}

/// Longest closure range accepted in one config item, in days.
const MAX_CLOSURE_RANGE_DAYS: usize = 366;

/// Parses closure days from config strings: `"2026-12-28"` or an inclusive
/// range `"2026-12-28..2027-01-01"`. The error text names the bad value.
pub fn parse_closures(items: &[String]) -> Result<Vec<Date>, String> {
    let mut out = BTreeSet::new();
    for item in items {
        let raw = item.trim();
        let parse_one = |s: &str| -> Result<Date, String> {
            let s = s.trim();
            if s.len() != 10 {
                return Err(format!(
                    "invalid closure day {raw:?}: expected YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD"
                ));
            }
            s.parse::<Date>().map_err(|e| {
                format!("invalid closure day {raw:?}: {s:?} is not a valid date ({e})")
            })
        };
        match raw.split_once("..") {
            None => {
                out.insert(parse_one(raw)?);
            }
            Some((a, b)) => {
                let (start, end) = (parse_one(a)?, parse_one(b)?);
                if end < start {
                    return Err(format!(
                        "invalid closure range {raw:?}: the end lies before the start"
                    ));
                }
                let mut d = start;
                let mut n = 0usize;
                loop {
                    n += 1;
                    if n > MAX_CLOSURE_RANGE_DAYS {
                        return Err(format!(
                            "invalid closure range {raw:?}: longer than {MAX_CLOSURE_RANGE_DAYS} days"
                        ));
                    }
                    out.insert(d);
                    if d >= end {
                        break;
                    }
                    match d.tomorrow() {
                        Ok(next) => d = next,
                        Err(_) => break,
                    }
                }
            }
        }
    }
    Ok(out.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn cal() -> Calendar {
        Calendar::dutch_default()
    }

    #[test]
    fn easter_sunday_matches_the_known_dates_2024_to_2030() {
        let known = [
            (2024, 3, 31),
            (2025, 4, 20),
            (2026, 4, 5),
            (2027, 3, 28),
            (2028, 4, 16),
            (2029, 4, 1),
            (2030, 4, 21),
        ];
        for (y, m, d) in known {
            assert_eq!(easter_sunday(y), date(y, m, d), "Easter {y}");
        }
    }

    #[test]
    fn easter_sunday_never_panics_on_extreme_years() {
        for y in [i16::MIN, -9999, -1, 0, 1, 9999, i16::MAX] {
            let _ = easter_sunday(y);
        }
        assert_eq!(easter_sunday(2000), date(2000, 4, 23));
    }

    #[test]
    fn an_acknowledgement_due_over_easter_skips_paasmaandag() {
        // Received Thursday 2 April 2026. Goede Vrijdag is a working day by
        // default: Fri 3 (1), [Sat, Sun 5 Pasen, Mon 6 Paasmaandag], Tue 7 (2),
        // Wed 8 (3), Thu 9 (4), Fri 10 (5).
        let c = cal();
        assert_eq!(c.holiday(date(2026, 4, 5)), Some("Eerste Paasdag"));
        assert_eq!(c.holiday(date(2026, 4, 6)), Some("Tweede Paasdag"));
        assert!(!c.is_working_day(date(2026, 4, 6)));
        assert!(c.is_working_day(date(2026, 4, 3)));
        assert_eq!(c.add_working_days(date(2026, 4, 2), 5), date(2026, 4, 10));
    }

    #[test]
    fn goede_vrijdag_is_a_day_off_only_when_configured() {
        // Easter 2027 is 28 March, so Goede Vrijdag is Friday 26 March.
        let default = cal();
        let with_gf = Calendar::new(true, LiberationDay::Lustrum, []);
        assert_eq!(default.holiday(date(2027, 3, 26)), None);
        assert!(default.is_working_day(date(2027, 3, 26)));
        assert_eq!(with_gf.holiday(date(2027, 3, 26)), Some("Goede Vrijdag"));
        // Received Thu 25 March 2027: default Fri 26 (1), Tue 30 (2), Wed 31 (3),
        // Thu 1 Apr (4), Fri 2 (5). With Goede Vrijdag off: Tue 30 (1) … Mon 5 (5).
        assert_eq!(
            default.add_working_days(date(2027, 3, 25), 5),
            date(2027, 4, 2)
        );
        assert_eq!(
            with_gf.add_working_days(date(2027, 3, 25), 5),
            date(2027, 4, 5)
        );
        assert_eq!(with_gf.holiday(date(2027, 3, 29)), Some("Tweede Paasdag"));
    }

    #[test]
    fn koningsdag_2027_falls_on_tuesday_27_april() {
        let c = cal();
        assert_eq!(date(2027, 4, 27).weekday(), Weekday::Tuesday);
        assert_eq!(c.holiday(date(2027, 4, 27)), Some("Koningsdag"));
        assert_eq!(c.holiday(date(2027, 4, 26)), None);
        // Received Mon 26 April 2027: Wed 28 is day 1.
        assert_eq!(c.add_working_days(date(2027, 4, 26), 1), date(2027, 4, 28));
    }

    #[test]
    fn a_response_term_from_16_april_2027_skips_koningsdag_hemelvaart_and_pinkstermaandag() {
        // Friday 16 April 2027 + 20 working days: Koningsdag (Tue 27 April),
        // Hemelvaartsdag (Thu 6 May) and Tweede Pinksterdag (Mon 17 May)
        // are skipped; Bevrijdingsdag (Wed 5 May) counts: 2027 is no lustrum.
        let received = date(2027, 4, 16);
        assert_eq!(cal().add_working_days(received, 20), date(2027, 5, 19));
        let every_year = Calendar::new(false, LiberationDay::EveryYear, []);
        assert_eq!(every_year.add_working_days(received, 20), date(2027, 5, 20));
        // The acknowledgement of a complaint from Thursday 22 April 2027.
        assert_eq!(
            cal().add_working_days(date(2027, 4, 22), 5),
            date(2027, 4, 30)
        );
    }

    #[test]
    fn koningsdag_2025_moves_to_saturday_26_april_because_the_27th_is_a_sunday() {
        let c = cal();
        assert_eq!(date(2025, 4, 27).weekday(), Weekday::Sunday);
        assert_eq!(c.holiday(date(2025, 4, 26)), Some("Koningsdag"));
        assert_eq!(c.holiday(date(2025, 4, 27)), None);
        // A Saturday holiday changes nothing: Fri 25 → Mon 28 is one working day.
        assert_eq!(
            c.working_days_between(date(2025, 4, 25), date(2025, 4, 28)),
            1
        );
    }

    #[test]
    fn hemelvaartsdag_and_pinksteren_are_days_off() {
        let c = cal();
        // Easter 2026 = 5 April: Hemelvaart +39 = Thu 14 May, Pinksteren 24/25 May.
        assert_eq!(c.holiday(date(2026, 5, 14)), Some("Hemelvaartsdag"));
        assert_eq!(c.holiday(date(2026, 5, 24)), Some("Eerste Pinksterdag"));
        assert_eq!(c.holiday(date(2026, 5, 25)), Some("Tweede Pinksterdag"));
        // Received Wed 13 May 2026: Fri 15 (1), Mon 18 (2).
        assert_eq!(c.add_working_days(date(2026, 5, 13), 2), date(2026, 5, 18));
        // Received Fri 22 May 2026: Tue 26 is day 1 (Pinkstermaandag skipped).
        assert_eq!(c.add_working_days(date(2026, 5, 22), 1), date(2026, 5, 26));
        // Easter 2025 = 20 April: Hemelvaart Thu 29 May, Pinkstermaandag 9 June.
        assert_eq!(c.holiday(date(2025, 5, 29)), Some("Hemelvaartsdag"));
        assert_eq!(c.holiday(date(2025, 6, 9)), Some("Tweede Pinksterdag"));
    }

    #[test]
    fn a_complaint_received_on_friday_18_december_2026_is_due_after_christmas_and_new_year() {
        // By hand, day 1 = first working day after Fri 18 Dec 2026:
        //  Mon 21 (1), Tue 22 (2), Wed 23 (3), Thu 24 (4),
        //  Fri 25 Eerste Kerstdag, Sat 26 Tweede Kerstdag, Sun 27 — skipped,
        //  Mon 28 (5)  → acknowledgement due Monday 28 December 2026.
        //  Tue 29 (6), Wed 30 (7), Thu 31 (8), Fri 1 Jan 2027 Nieuwjaarsdag skipped,
        //  Mon 4 (9), Tue 5 (10), Wed 6 (11), Thu 7 (12), Fri 8 (13),
        //  Mon 11 (14), Tue 12 (15), Wed 13 (16), Thu 14 (17), Fri 15 (18),
        //  Mon 18 (19), Tue 19 (20) → response due Tuesday 19 January 2027.
        let c = cal();
        let received = date(2026, 12, 18);
        assert_eq!(received.weekday(), Weekday::Friday);
        assert_eq!(c.holiday(date(2026, 12, 25)), Some("Eerste Kerstdag"));
        assert_eq!(c.holiday(date(2026, 12, 26)), Some("Tweede Kerstdag"));
        assert_eq!(c.holiday(date(2027, 1, 1)), Some("Nieuwjaarsdag"));
        assert_eq!(c.add_working_days(received, 5), date(2026, 12, 28));
        assert_eq!(c.add_working_days(received, 20), date(2027, 1, 19));
        assert_eq!(c.working_days_between(received, date(2027, 1, 19)), 20);
    }

    #[test]
    fn bevrijdingsdag_is_off_in_lustrum_years_by_default_and_configurable() {
        let c = cal();
        assert_eq!(c.holiday(date(2025, 5, 5)), Some("Bevrijdingsdag"));
        assert!(!c.is_working_day(date(2025, 5, 5)));
        assert_eq!(c.holiday(date(2026, 5, 5)), None);
        assert!(c.is_working_day(date(2026, 5, 5)));
        assert_eq!(c.holiday(date(2030, 5, 5)), Some("Bevrijdingsdag"));
        let every = Calendar::new(false, LiberationDay::EveryYear, []);
        assert_eq!(every.holiday(date(2026, 5, 5)), Some("Bevrijdingsdag"));
        let never = Calendar::new(false, LiberationDay::Never, []);
        assert_eq!(never.holiday(date(2025, 5, 5)), None);
    }

    #[test]
    fn a_configured_closure_week_pushes_the_acknowledgement_out() {
        let closures = parse_closures(&["2026-07-27..2026-07-31".to_string()]).unwrap();
        assert_eq!(closures.len(), 5);
        let c = Calendar::new(false, LiberationDay::Lustrum, closures);
        assert_eq!(c.holiday(date(2026, 7, 29)), Some("sluitingsdag"));
        // Received Fri 24 July 2026: the week of 27–31 July is closed,
        // so Mon 3 Aug (1) … Fri 7 Aug (5).
        assert_eq!(c.add_working_days(date(2026, 7, 24), 5), date(2026, 8, 7));
        assert_eq!(
            cal().add_working_days(date(2026, 7, 24), 5),
            date(2026, 7, 31)
        );
    }

    #[test]
    fn weekends_are_not_holidays_but_are_not_working_days() {
        let c = cal();
        assert_eq!(c.holiday(date(2026, 3, 7)), None);
        assert!(!c.is_working_day(date(2026, 3, 7)));
        assert!(!c.is_working_day(date(2026, 3, 8)));
        assert!(c.is_working_day(date(2026, 3, 9)));
    }

    #[test]
    fn the_receipt_day_itself_never_counts_even_on_a_weekend() {
        let c = cal();
        // Received Saturday 7 March 2026: day 1 is Monday 9 March.
        assert_eq!(c.add_working_days(date(2026, 3, 7), 1), date(2026, 3, 9));
        // Received Monday 9 March: day 1 is Tuesday 10 March.
        assert_eq!(c.add_working_days(date(2026, 3, 9), 1), date(2026, 3, 10));
        assert_eq!(c.add_working_days(date(2026, 3, 9), 0), date(2026, 3, 9));
    }

    #[test]
    fn working_days_between_is_signed_and_half_open() {
        let c = cal();
        let mon = date(2026, 3, 9);
        let fri = date(2026, 3, 13);
        assert_eq!(c.working_days_between(mon, fri), 4);
        assert_eq!(c.working_days_between(fri, mon), -4);
        assert_eq!(c.working_days_between(mon, mon), 0);
        // Sat → Sun: nothing in between that works.
        assert_eq!(
            c.working_days_between(date(2026, 3, 14), date(2026, 3, 15)),
            0
        );
        for n in 0..40 {
            let due = c.add_working_days(date(2026, 12, 18), n);
            assert_eq!(
                c.working_days_between(date(2026, 12, 18), due),
                i64::from(n)
            );
        }
    }

    #[test]
    fn adding_working_days_at_the_end_of_time_saturates_instead_of_panicking() {
        let c = cal();
        assert_eq!(c.add_working_days(Date::MAX, 3), Date::MAX);
        assert!(c.add_working_days(date(9999, 12, 1), 1000) <= Date::MAX);
        assert!(c.working_days_between(Date::MAX, Date::MAX) == 0);
    }

    #[test]
    fn closure_config_accepts_days_and_ranges_and_names_bad_values() {
        let items: Vec<String> = ["2026-12-28", " 2026-12-30..2027-01-02 ", "2026-12-28"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let days = parse_closures(&items).unwrap();
        assert_eq!(
            days,
            vec![
                date(2026, 12, 28),
                date(2026, 12, 30),
                date(2026, 12, 31),
                date(2027, 1, 1),
                date(2027, 1, 2)
            ]
        );
        for bad in [
            "2026-13-01",
            "28-12-2026",
            "",
            "2026-12-31..2026-12-01",
            "x..y",
            "2020-01-01..2026-01-01",
        ] {
            let err = parse_closures(&[bad.to_string()]).unwrap_err();
            assert!(err.contains(&format!("{:?}", bad.trim())), "{err}");
        }
    }

    #[test]
    fn the_default_liberation_day_rule_is_lustrum() {
        assert_eq!(LiberationDay::default(), LiberationDay::Lustrum);
    }
}
