use super::*;
use crate::transcript::entry::Tokens;

fn fact(ts: &str, session: &'static str, input: u64) -> (Millis, &'static str, u64) {
    (ts.parse::<Timestamp>().unwrap().as_millisecond(), session, input)
}

fn breakdown(by: By, tz: &str, since: Option<&str>, until: Option<&str>, facts: &[(Millis, &str, u64)]) -> Breakdown {
    let grouping = Grouping {
        by,
        tz: parse_timezone(tz).unwrap(),
        since: since.map(|s| parse_bound(s).unwrap()),
        until: until.map(|s| parse_bound(s).unwrap()),
    };
    let mut c = Collector::new(grouping);
    for (i, (ts, session, input)) in facts.iter().enumerate() {
        let tokens = Tokens { input: *input, ..Tokens::default() };
        c.add(&UsageFact {
            ts_ms: Some(*ts),
            session,
            project: "p,q",
            model: "claude-opus-4-20250514",
            source: "main",
            tokens,
            cost_usd: 0.1,
            first: i % 2 == 0,
        });
    }
    c.finish()
}

fn keys(b: &Breakdown) -> Vec<(&str, u64)> {
    b.rows.iter().map(|r| (r.key.as_str(), r.usage.input)).collect()
}

#[test]
fn days_are_those_of_the_time_zone() {
    // 23:30 UTC on 14 June is 01:30 on 15 June in Paris (UTC+2 in summer).
    let facts = [fact("2025-06-14T23:30:00Z", "s", 1), fact("2025-06-14T12:00:00Z", "s", 2)];
    assert_eq!(keys(&breakdown(By::Day, "UTC", None, None, &facts)), [("2025-06-14", 3)]);
    assert_eq!(keys(&breakdown(By::Day, "Europe/Paris", None, None, &facts)), [("2025-06-14", 2), ("2025-06-15", 1)]);
}

#[test]
fn weeks_start_on_monday_and_months_are_calendar_months() {
    // 2025-06-15 is a Sunday, 2025-06-16 a Monday.
    let facts = [
        fact("2025-06-15T10:00:00Z", "s", 1),
        fact("2025-06-16T10:00:00Z", "s", 2),
        fact("2025-07-01T00:00:00Z", "s", 4),
    ];
    assert_eq!(
        keys(&breakdown(By::Week, "UTC", None, None, &facts)),
        [("2025-06-09", 1), ("2025-06-16", 2), ("2025-06-30", 4)]
    );
    assert_eq!(keys(&breakdown(By::Month, "UTC", None, None, &facts)), [("2025-06", 3), ("2025-07", 4)]);
}

#[test]
fn since_and_until_are_whole_days_in_the_zone() {
    let facts = [
        fact("2025-06-13T23:59:59Z", "a", 1),
        fact("2025-06-14T00:00:00Z", "b", 2),
        fact("2025-06-15T23:59:59.999Z", "c", 4),
        fact("2025-06-16T00:00:00Z", "d", 8),
    ];
    let b = breakdown(By::Session, "UTC", Some("2025-06-14"), Some("20250615"), &facts);
    assert_eq!(keys(&b), [("b", 2), ("c", 4)]);
    assert_eq!(b.totals.input, 6);
    // In Paris, 2025-06-13T23:59:59Z is already the 14th.
    let b = breakdown(By::Session, "Europe/Paris", Some("2025-06-14"), None, &facts);
    assert_eq!(b.rows.first().map(|r| r.key.as_str()), Some("a"));
}

#[test]
fn bounds_parse_as_dates_or_durations() {
    assert_eq!(parse_bound("2025-06-14"), Ok(Bound::Day("2025-06-14".parse().unwrap())));
    assert_eq!(parse_bound("20250614"), Ok(Bound::Day("2025-06-14".parse().unwrap())));
    let Ok(Bound::At(t)) = parse_bound("7d") else { panic!("7d is a duration") };
    let ago = Timestamp::now().as_millisecond() - t.as_millisecond();
    assert!((7 * 86_400_000..7 * 86_400_000 + 60_000).contains(&ago), "{ago}");
    assert!(parse_bound("2025-13-01").is_err());
    assert!(parse_bound("soon").is_err());
    assert!(parse_timezone("local").is_ok() && parse_timezone("Nowhere/Town").is_err());
}

#[test]
fn outputs_have_totals_rounded_money_and_quoted_csv() {
    let facts = [fact("2025-06-14T10:00:00Z", "s", 1_234_567), fact("2025-06-14T11:00:00Z", "t", 1)];
    let b = breakdown(By::Session, "UTC", None, None, &facts);
    let csv = b.csv();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "session,projects,last_activity,models,requests,input,output,cache_creation,cache_read,total_tokens,cost_usd"
    );
    assert_eq!(lines[1], "s,\"p,q\",2025-06-14 10:00,claude-opus-4-20250514,1,1234567,0,0,0,1234567,0.100000");
    assert_eq!(lines[3], "total,,,,1,1234568,0,0,0,1234568,0.200000");
    let table = b.table();
    assert!(table.contains("1,234,567") && table.contains("opus-4") && !table.contains("opus-4-2025"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("total") && l.contains("1,234,568") && l.ends_with("0.20")), "{table}");
    let j = b.json();
    assert_eq!(j["totals"]["input"], 1_234_568);
    assert_eq!(j["totals"]["cost_usd"], 0.2);
    assert_eq!(j["rows"][0]["projects"][0], "p,q");
}

#[test]
fn numbers_get_separators() {
    use crate::report::{money, num, round6};
    assert_eq!([num(0), num(999), num(1000), num(1_234_567)], ["0", "999", "1,000", "1,234,567"]);
    assert_eq!([money(0.004), money(1234.567)], ["0.00", "1,234.57"]);
    assert_eq!(round6(1.9525576999999998), 1.952558);
}
