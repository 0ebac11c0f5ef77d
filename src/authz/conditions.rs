//! Conditions on a rule: a time window in a timezone, and source networks.

use std::net::IpAddr;

use chrono::{Datelike, Timelike};
use chrono_tz::Tz;
use ipnet::IpNet;

use crate::context::RequestContext;

/// A time window: minutes of the day and days of the week, in an IANA timezone.
///
/// The window is evaluated on the request's receive time converted to the zone, so daylight
/// saving changes move it with the local clock: `08:00-18:00` in `Europe/Berlin` is 08:00-18:00
/// Berlin time in winter and in summer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    tz: Tz,
    start: u16,
    end: u16,
    weekdays: u8,
}

/// A time window that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeWindowError {
    /// Hours are not `HH-HH` or `HH:MM-HH:MM`.
    #[error(
        "hours must be HH-HH or HH:MM-HH:MM, from 00:00 to 24:00, start before or after end but not equal"
    )]
    Hours,
    /// Unknown timezone.
    #[error("timezone must be an IANA name such as Europe/Berlin")]
    Timezone,
    /// Unknown weekday.
    #[error("weekdays are mon, tue, wed, thu, fri, sat, sun")]
    Weekday,
}

fn minutes(s: &str) -> Option<u16> {
    let (h, m) = match s.split_once(':') {
        Some((h, m)) => (h, m),
        None => (s, "0"),
    };
    let (h, m): (u16, u16) = (h.trim().parse().ok()?, m.trim().parse().ok()?);
    (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
}

impl TimeWindow {
    /// A window from `hours` (`"08-18"`, `"08:30-17:45"`, or overnight `"22-06"`) on `weekdays`
    /// (`"mon"`..`"sun"`; empty means every day) in timezone `tz`. The start is inclusive, the
    /// end exclusive; an overnight window's weekdays name the day it starts.
    ///
    /// # Errors
    /// A [`TimeWindowError`] naming the part that is wrong.
    pub fn parse<S: AsRef<str>>(
        hours: Option<&str>,
        weekdays: &[S],
        tz: &str,
    ) -> Result<Self, TimeWindowError> {
        let tz: Tz = tz.parse().map_err(|_| TimeWindowError::Timezone)?;
        let (start, end) = match hours {
            None => (0, 24 * 60),
            Some(h) => {
                let (a, b) = h.split_once('-').ok_or(TimeWindowError::Hours)?;
                let (a, b) = (
                    minutes(a).ok_or(TimeWindowError::Hours)?,
                    minutes(b).ok_or(TimeWindowError::Hours)?,
                );
                if a == b {
                    return Err(TimeWindowError::Hours);
                }
                (a, b)
            }
        };
        let mut mask = 0u8;
        for d in weekdays {
            let bit = match d.as_ref().to_ascii_lowercase().as_str() {
                "mon" => 0,
                "tue" => 1,
                "wed" => 2,
                "thu" => 3,
                "fri" => 4,
                "sat" => 5,
                "sun" => 6,
                _ => return Err(TimeWindowError::Weekday),
            };
            mask |= 1 << bit;
        }
        Ok(TimeWindow {
            tz,
            start,
            end,
            weekdays: if mask == 0 { 0x7f } else { mask },
        })
    }

    /// Whether `at` falls inside the window.
    pub fn contains(&self, at: chrono::DateTime<chrono::Utc>) -> bool {
        let local = at.with_timezone(&self.tz);
        let minute = u16::try_from(local.hour() * 60 + local.minute()).unwrap_or(u16::MAX);
        let day = local.weekday().num_days_from_monday();
        let day_ok = |d: u32| self.weekdays & (1 << d) != 0;
        if self.start < self.end {
            day_ok(day) && (self.start..self.end).contains(&minute)
        } else if minute >= self.start {
            // Overnight window, evening part: it started today.
            day_ok(day)
        } else {
            // Overnight window, morning part: it started yesterday.
            minute < self.end && day_ok((day + 6) % 7)
        }
    }
}

/// Conditions a matching rule also needs to apply: all must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    window: Option<TimeWindow>,
    cidrs: Vec<IpNet>,
}

impl Conditions {
    /// No conditions.
    pub fn none() -> Self {
        Conditions::default()
    }

    /// Only inside this time window.
    pub fn with_window(mut self, window: TimeWindow) -> Self {
        self.window = Some(window);
        self
    }

    /// Only from these networks. A request with no peer address (stdio) then never qualifies.
    pub fn with_cidrs(mut self, cidrs: impl IntoIterator<Item = IpNet>) -> Self {
        self.cidrs = cidrs.into_iter().collect();
        self
    }

    /// `Ok`, or the reason (fixed text) the conditions do not hold for `cx`.
    pub(crate) fn check(&self, cx: &RequestContext) -> Result<(), &'static str> {
        if let Some(w) = &self.window
            && !w.contains(cx.received_at())
        {
            return Err("outside the allowed hours");
        }
        if !self.cidrs.is_empty()
            && !cx
                .peer_addr()
                // An IPv4 peer seen through an IPv6 socket (::ffff:a.b.c.d) is that IPv4 peer.
                .map(|a: IpAddr| a.to_canonical())
                .is_some_and(|a| self.cidrs.iter().any(|n| n.contains(&a)))
        {
            return Err("not allowed from this address");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .unwrap_or_default()
    }

    #[test]
    fn office_hours_in_berlin_across_dst() {
        let w = TimeWindow::parse(
            Some("08-18"),
            &["mon", "tue", "wed", "thu", "fri"],
            "Europe/Berlin",
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        // Winter (UTC+1): 07:30 UTC is 08:30 local.
        assert!(w.contains(at(2026, 1, 12, 7, 30)));
        assert!(!w.contains(at(2026, 1, 12, 6, 59)));
        // Summer (UTC+2): 06:30 UTC is 08:30 local; 16:30 UTC is 18:30 local.
        assert!(w.contains(at(2026, 7, 13, 6, 30)));
        assert!(!w.contains(at(2026, 7, 13, 16, 30)));
        // Saturday.
        assert!(!w.contains(at(2026, 7, 11, 10, 0)));
        // The DST change day (2026-03-29, a Sunday) is not a weekday; Monday after it is UTC+2.
        assert!(w.contains(at(2026, 3, 30, 6, 0)));
        assert!(!w.contains(at(2026, 3, 30, 5, 59)));
    }

    #[test]
    fn overnight_and_errors() {
        let w = TimeWindow::parse(Some("22:00-06:00"), &["fri"], "UTC")
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(w.contains(at(2026, 7, 10, 23, 0))); // Friday night
        assert!(w.contains(at(2026, 7, 11, 5, 0))); // Saturday morning, started Friday
        assert!(!w.contains(at(2026, 7, 11, 23, 0))); // Saturday night
        assert_eq!(
            TimeWindow::parse(Some("8-8"), &[] as &[&str], "UTC"),
            Err(TimeWindowError::Hours)
        );
        assert_eq!(
            TimeWindow::parse(Some("25-3"), &[] as &[&str], "UTC"),
            Err(TimeWindowError::Hours)
        );
        assert_eq!(
            TimeWindow::parse(None, &[] as &[&str], "Mars/Olympus"),
            Err(TimeWindowError::Timezone)
        );
        assert_eq!(
            TimeWindow::parse(None, &["funday"], "UTC"),
            Err(TimeWindowError::Weekday)
        );
    }
}
