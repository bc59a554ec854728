//! The periodic analysis by mail (art. 10): on the first working day of a
//! new month or quarter (`[report] every`), each supervisor gets the
//! analysis of the period that just ended, with a chart inline. Once per
//! supervisor and period, under a key in `notices`, like every other piece
//! of scheduled work.

use anyhow::Result;
use jiff::civil::Date;
use jiff::Timestamp;

use super::chart::{self, ChartData, ChartLabels, ChartMonth};
use super::{Month, Report, Timeliness};
use crate::app::App;
use crate::config::{ReportEvery, Settings, Staff};
use crate::domain::calendar::Calendar;
use crate::domain::event::OutboxKind;
use crate::domain::types::Lang;
use crate::flows::notify::{org, queue_mail, Mail};
use crate::mail::render::context::{self, ExtensionLine, Named, Term, Terms};
use crate::mail::render::{long_date, month_name};
use crate::store::{self, CaseFilter, NoticeKey};

/// A report period: its first and last day, and a key part (`2026-10`,
/// `2026-Q4`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    pub first: Date,
    pub last: Date,
    pub id: String,
}

/// How many working days into a new period a missed report is still sent
/// (the daemon was down on the first one).
const CATCH_UP_WORKING_DAYS: i64 = 5;

fn period_containing(d: Date, every: ReportEvery) -> Period {
    let (first, months, id) = match every {
        ReportEvery::Month => (
            d.first_of_month(),
            1,
            format!("{:04}-{:02}", d.year(), d.month()),
        ),
        ReportEvery::Quarter => {
            let q = (d.month() - 1) / 3;
            (
                Date::new(d.year(), q * 3 + 1, 1).unwrap_or(d),
                3,
                format!("{:04}-Q{}", d.year(), q + 1),
            )
        }
    };
    let last = first
        .checked_add(jiff::Span::new().months(months))
        .and_then(|n| n.yesterday())
        .unwrap_or(first);
    Period { first, last, id }
}

/// The period whose report is due on `today`, if any: the one before
/// today's, from the first working day of today's period until
/// [`CATCH_UP_WORKING_DAYS`] working days later.
pub fn due_period(today: Date, every: ReportEvery, cal: &Calendar) -> Option<Period> {
    let current = period_containing(today, every);
    let mut first_working = current.first;
    while !cal.is_working_day(first_working) {
        first_working = first_working.tomorrow().ok()?;
    }
    if today < first_working
        || cal.working_days_between(first_working, today) >= CATCH_UP_WORKING_DAYS
    {
        return None;
    }
    Some(period_containing(current.first.yesterday().ok()?, every))
}

/// "oktober 2026", "4e kwartaal 2026", "Q4 2026".
pub fn period_label(p: &Period, every: ReportEvery, lang: Lang) -> String {
    match (every, lang) {
        (ReportEvery::Month, _) => {
            format!("{} {}", month_name(lang, p.first.month()), p.first.year())
        }
        (ReportEvery::Quarter, Lang::Nl) => {
            format!(
                "{}e kwartaal {}",
                (p.first.month() - 1) / 3 + 1,
                p.first.year()
            )
        }
        (ReportEvery::Quarter, Lang::En) => {
            format!("Q{} {}", (p.first.month() - 1) / 3 + 1, p.first.year())
        }
    }
}

/// Sends the report of the period due today to every supervisor who has
/// not had it. Returns how many were queued.
pub async fn round(app: &App, today: Date, now: Timestamp) -> Result<usize> {
    let s = &app.settings;
    let Some(period) = due_period(today, s.report_every, &s.calendar) else {
        return Ok(0);
    };
    // Every pass in the catch-up window comes here: the register is read
    // and the chart drawn only while a supervisor still lacks the report.
    let mut supervisors: Vec<&Staff> = Vec::new();
    for sup in s.supervisors() {
        if !app.store.notice_claimed(&notice_key(&period, sup)).await? {
            supervisors.push(sup);
        }
    }
    if supervisors.is_empty() {
        return Ok(0);
    }
    let (cases, records) =
        crate::register::load(&app.store, s, &CaseFilter::default(), today).await?;
    let report = super::build(&cases, &records, period.first, period.last, &s.procedure);
    let lang = s.organisation.language;
    let year = super::monthly(&cases, &records, year_before(period.last), period.last);
    let data = chart_data(&report, &year, period.last, lang);
    let chart = match chart::render_png(&data) {
        Ok(png) => Some((png, chart::alt_text(&data))),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), period = %period.id, "report chart not drawn; the mail goes without it");
            None
        }
    };
    let mut sent = 0;
    for sup in supervisors {
        if send_to(app, sup, &report, &period, chart.as_ref(), now).await? {
            sent += 1;
        }
    }
    if sent > 0 {
        tracing::info!(period = %period.id, mails = sent, "periodic analysis queued");
    }
    Ok(sent)
}

/// The first day of the twelve months that end with the month of `last`.
fn year_before(last: Date) -> Date {
    let first = last.first_of_month();
    first.checked_sub(jiff::ToSpan::months(11)).unwrap_or(first)
}

/// "okt 2026", "Mar 2026": a month label under the chart's bars.
fn short_month(month: &str, lang: Lang) -> String {
    let parsed = month
        .split_once('-')
        .and_then(|(y, m)| Some((y, m.parse::<i8>().ok()?)));
    match (parsed, lang) {
        (Some((y, 3)), Lang::Nl) => format!("mrt {y}"),
        (Some((y, m)), _) => {
            let name: String = month_name(lang, m).chars().take(3).collect();
            format!("{name} {y}")
        }
        (None, _) => month.to_string(),
    }
}

/// The chart of the twelve months `year`, the last one that of `last`.
fn chart_data(r: &Report, year: &[Month], last: Date, lang: Lang) -> ChartData {
    let categories: Vec<String> = r.by_category.keys().cloned().collect();
    let months = year.iter().map(|m| ChartMonth {
        label: short_month(&m.month, lang),
        counts: (categories.iter())
            .map(|c| m.by_category.get(c).copied().unwrap_or(0))
            .collect(),
        on_time: [m.acknowledgement_on_time_rate, m.response_on_time_rate],
    });
    let last = format!("{} {}", month_name(lang, last.month()), last.year());
    ChartData {
        months: months.collect(),
        categories,
        labels: chart_labels(lang, r.ack_working_days, &last),
    }
}

/// The chart's texts; `last`: the last month shown ("oktober 2026").
pub(super) fn chart_labels(lang: Lang, ack_working_days: u32, last: &str) -> ChartLabels {
    let t = |nl: &str, en: &str| if lang == Lang::Nl { nl } else { en }.to_string();
    ChartLabels {
        per_month: t(
            "Klachten per maand per categorie, 12 maanden t/m ",
            "Complaints per month by category, 12 months to ",
        ) + last,
        on_time: t(
            "Op tijd, per maand van ontvangst (%; lopende termijnen tellen niet mee)",
            "On time, by month received (%; terms still running not counted)",
        ),
        terms: [
            format!(
                "{} {ack_working_days} {} (art. 5)",
                t("Ontvangstbevestiging binnen", "Acknowledgement within"),
                t("werkdagen", "working days")
            ),
            t(
                "Reactie binnen de termijn, incl. verlenging (art. 6)",
                "Response within the term, incl. extension (art. 6)",
            ),
        ],
        no_complaints: t("Geen klachten", "No complaints"),
        not_measured: t("Nog niets gemeten", "Nothing measured yet"),
    }
}

fn term(t: &Timeliness) -> Term {
    Term {
        pct: t.on_time_rate.map(|r| format!("{:.0}%", r * 100.0)),
        on_time: t.on_time,
        measured: t.measured,
        late: t.late,
        median: t.median_working_days.map(|d| d.to_string()),
        max: t.max_working_days,
    }
}

fn notice_key(period: &Period, sup: &Staff) -> String {
    format!("report:{}:{}", period.id, sup.email.key())
}

/// One supervisor's report mail, once per period.
async fn send_to(
    app: &App,
    sup: &Staff,
    report: &Report,
    period: &Period,
    chart: Option<&(Vec<u8>, String)>,
    now: Timestamp,
) -> Result<bool> {
    let s = &app.settings;
    let lang = s.organisation.language;
    let cid = format!("chart-{}@{}", period.id, s.organisation.message_id_domain);
    let shown = chart.map(|(_, alt)| (cid.as_str(), alt.as_str()));
    let ctx = mail_context(s, sup, report, period, shown);
    let mut tx = app.store.begin().await?;
    let key = NoticeKey {
        key: notice_key(period, sup),
        case_id: None,
        kind: "report",
        level: 1,
        day: period.first.to_string(),
    };
    if !store::claim_notice(&mut tx, &key, sup.email.as_str(), now).await? {
        tx.rollback().await?;
        return Ok(false);
    }
    let rendered = app.renderer.render(lang, &ctx)?;
    let inline: Vec<(String, String, Vec<u8>)> = chart
        .map(|(png, _)| vec![(cid.clone(), "image/png".into(), png.clone())])
        .unwrap_or_default();
    queue_mail(
        app,
        &mut tx,
        &Mail {
            case_id: None,
            kind: OutboxKind::Report,
            from_name: &format!("{} klachten", s.organisation.name),
            to_name: &sup.name,
            to: &sup.email,
            rendered: &rendered,
            in_reply_to: None,
            references: &[],
            auto_reply: false,
            attachments: &[],
            inline: &inline,
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// The report template's context for one supervisor: the counts are the
/// whole register's; the lines that name a case (extension reasons,
/// external referrals) leave out the cases that concern `sup` (art. 9).
/// `chart`: the inline image's Content-ID and its alt text, if drawn.
pub(crate) fn mail_context<'a>(
    s: &'a Settings,
    sup: &'a Staff,
    report: &Report,
    period: &Period,
    chart: Option<(&'a str, &'a str)>,
) -> context::Report<'a> {
    let lang = s.organisation.language;
    let shown = report.for_reader(sup.email.as_str());
    let extensions: Vec<_> = shown
        .extensions
        .items
        .iter()
        .map(|e| ExtensionLine {
            reference: e.reference.clone(),
            days: e.days,
            reason: e.reason.clone(),
        })
        .collect();
    let concerned = report
        .by_concerned
        .iter()
        .map(|(who, n)| {
            let name = crate::domain::types::EmailAddress::parse(who)
                .ok()
                .and_then(|e| s.staff_by_email(&e))
                .map_or(who.clone(), |st| st.name.clone());
            (name, *n)
        })
        .collect();
    context::Report {
        org: org(s),
        recipient: Named { name: &sup.name },
        period: period_label(period, s.report_every, lang),
        from: long_date(lang, period.first),
        to: long_date(lang, period.last),
        from_iso: period.first.to_string(),
        to_iso: period.last.to_string(),
        text: super::text(&shown, lang),
        report: shown,
        terms: Terms {
            acknowledgement: term(&report.acknowledgement),
            response: term(&report.response),
            within_term: term(&report.response_within_term),
        },
        ack_days: report.ack_working_days,
        response_days: report.response_working_days,
        concerned,
        extensions,
        chart_cid: chart.map(|(cid, _)| cid),
        chart_alt: chart.map(|(_, alt)| alt),
    }
}

/// What the template tests fill the report's context from.
#[cfg(test)]
pub(crate) struct Sample {
    settings: Settings,
    sup: Staff,
    report: Report,
    period: Period,
}

#[cfg(test)]
impl Sample {
    pub(crate) fn new(lang: Lang) -> Self {
        let mut settings = crate::config::tests::settings();
        settings.organisation.language = lang;
        let sup = settings.supervisors().next().expect("a supervisor").clone();
        let period = due_period(
            "2026-11-02".parse().unwrap(),
            ReportEvery::Month,
            &settings.calendar,
        )
        .expect("a period");
        let report = sample_report(&settings, &sup, &period);
        Sample {
            settings,
            sup,
            report,
            period,
        }
    }

    /// The filled-in context, as a supervisor gets it.
    pub(crate) fn context(&self) -> context::Report<'_> {
        let alt = "Klachten per maand per categorie, 12 maanden t/m oktober 2026: nov 2025 0; …";
        let chart = Some(("chart-2026-10@k.test", alt));
        mail_context(&self.settings, &self.sup, &self.report, &self.period, chart)
    }
}

#[cfg(test)]
fn sample_report(s: &Settings, sup: &Staff, period: &Period) -> Report {
    let mut r = super::build(&[], &[], period.first, period.last, &s.procedure);
    r.total = 3;
    r.by_concerned.insert(sup.email.key(), 1);
    r.acknowledgement = Timeliness {
        measured: 3,
        on_time: 2,
        late: 1,
        on_time_rate: Some(0.667),
        median_working_days: Some(1.0),
        max_working_days: Some(6),
    };
    r.extensions = super::Extensions {
        cases: 1,
        total: 1,
        items: vec![super::ExtensionItem {
            reference: "KL-2026-0003".into(),
            days: Some(5),
            reason: "wacht op het verslag <van de coach>".into(),
            concerns: vec![],
        }],
    };
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        s.parse().unwrap()
    }

    #[test]
    fn the_mails_chart_shows_the_twelve_months_up_to_the_period_and_says_them_in_words() {
        use crate::domain::types::{Category, Status};
        use crate::register::tests::case;
        let cal = Calendar::dutch_default();
        let mut cases = vec![
            case(1, Status::Closed, "2025-10-31T09:00:00Z"), // before the twelve months
            case(2, Status::Closed, "2025-11-03T09:00:00Z"),
            case(3, Status::Closed, "2026-03-02T09:00:00Z"),
            case(4, Status::Acknowledged, "2026-10-05T09:00:00Z"),
            case(5, Status::Acknowledged, "2026-10-20T09:00:00Z"),
            case(6, Status::Acknowledged, "2026-11-02T08:00:00Z"), // after the period
        ];
        cases[2].category = Category::Overig;
        cases[4].category = Category::Communicatie;
        cases[3].ack_sent_at = Some("2026-10-05T09:05:00Z".parse().unwrap());
        let tz = jiff::tz::TimeZone::get("Europe/Amsterdam").unwrap();
        let records = crate::register::records(&cases, &[], d("2026-11-02"), &tz, &cal);
        let period = due_period(d("2026-11-02"), ReportEvery::Month, &cal).unwrap();
        let procedure = crate::config::tests::settings().procedure;
        let report = super::super::build(&cases, &records, period.first, period.last, &procedure);
        assert_eq!(
            report.total, 2,
            "the period's own figures stay the period's"
        );
        let year = super::super::monthly(&cases, &records, year_before(period.last), period.last);
        let data = chart_data(&report, &year, period.last, Lang::Nl);
        let labels: Vec<&str> = data.months.iter().map(|m| m.label.as_str()).collect();
        assert_eq!(labels.len(), 12);
        assert_eq!(
            (labels[0], labels[4], labels[11]),
            ("nov 2025", "mrt 2026", "okt 2026")
        );
        let alt = chart::alt_text(&data);
        let counts = "Klachten per maand per categorie, 12 maanden t/m oktober 2026: \
            nov 2025 1 (coaching 1); dec 2025 0; jan 2026 0; feb 2026 0; mrt 2026 1 (overig 1); ";
        assert!(alt.starts_with(counts), "{alt}");
        let october = "; okt 2026 2 (coaching 1, communicatie 1). Op tijd";
        assert!(alt.contains(october), "{alt}");
        // Case 4 was acknowledged at once, case 5 never (due 27 October).
        assert!(
            alt.contains("(art. 5): nov 2025 0%, mrt 2026 0%, okt 2026 50%;"),
            "{alt}"
        );
        let english = chart::alt_text(&chart_data(&report, &year, period.last, Lang::En));
        assert!(
            english.starts_with(
                "Complaints per month by category, 12 months to October 2026: Nov 2025 1"
            ),
            "{english}"
        );
    }

    #[test]
    fn the_report_is_due_from_the_first_working_day_of_a_new_period_for_a_week() {
        let cal = Calendar::dutch_default();
        let m = ReportEvery::Month;
        // 1 November 2026 is a Sunday: Monday 2 November is the day.
        assert_eq!(due_period(d("2026-11-01"), m, &cal), None);
        let p = due_period(d("2026-11-02"), m, &cal).unwrap();
        assert_eq!(
            (p.first, p.last, p.id.as_str()),
            (d("2026-10-01"), d("2026-10-31"), "2026-10")
        );
        // A daemon that was down catches up within five working days.
        assert!(due_period(d("2026-11-06"), m, &cal).is_some());
        assert_eq!(due_period(d("2026-11-09"), m, &cal), None);
        // 1 January is a holiday: Friday 2 January 2026.
        let p = due_period(d("2026-01-02"), m, &cal).unwrap();
        assert_eq!((p.first, p.last), (d("2025-12-01"), d("2025-12-31")));
        assert_eq!(due_period(d("2026-01-01"), m, &cal), None);
        // Quarters: Thursday 1 October 2026 reports on July to September.
        let q = ReportEvery::Quarter;
        let p = due_period(d("2026-10-01"), q, &cal).unwrap();
        assert_eq!(
            (p.first, p.last, p.id.as_str()),
            (d("2026-07-01"), d("2026-09-30"), "2026-Q3")
        );
        assert_eq!(due_period(d("2026-11-02"), q, &cal), None);
        assert_eq!(period_label(&p, q, Lang::Nl), "3e kwartaal 2026");
        assert_eq!(period_label(&p, q, Lang::En), "Q3 2026");
        let p = due_period(d("2026-11-02"), m, &cal).unwrap();
        assert_eq!(period_label(&p, m, Lang::Nl), "oktober 2026");
    }
}
