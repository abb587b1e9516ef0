//! Request counts per webhook over the original service's windows.

use serde_json::{Map, Value};

const MINUTE_SLOTS: usize = 60;
const HOUR_SLOTS: usize = 24 * 30;

/// Counts of one webhook: a total, per-minute slots for the last hour and per-hour slots
/// for the last 30 days. Windows are whole minutes (up to an hour) or whole hours (beyond),
/// the current one included.
#[derive(Debug, Clone)]
pub(crate) struct StatsWindows {
    total: u64,
    duplicates: u64,
    filtered: u64,
    minutes: Box<[(u64, u64); MINUTE_SLOTS]>,
    hours: Box<[(u64, u64); HOUR_SLOTS]>,
}

impl Default for StatsWindows {
    fn default() -> Self {
        Self {
            total: 0,
            duplicates: 0,
            filtered: 0,
            minutes: Box::new([(u64::MAX, 0); MINUTE_SLOTS]),
            hours: Box::new([(u64::MAX, 0); HOUR_SLOTS]),
        }
    }
}

impl StatsWindows {
    /// Count one request at `now` (seconds since the Unix epoch).
    /// Count a request answered as a duplicate (not delivered, not in `total`).
    pub(crate) fn record_duplicate(&mut self) {
        self.duplicates += 1;
    }

    /// Count a request its webhook's filter (or every destination's) did not match (not
    /// stored, not delivered, not in `total`).
    pub(crate) fn record_filtered(&mut self) {
        self.filtered += 1;
    }

    pub(crate) fn record(&mut self, now: u64) {
        self.total += 1;
        bump(&mut self.minutes[..], now / 60);
        bump(&mut self.hours[..], now / 3600);
    }

    /// The original's shape: `total, minute, 5_minutes, 15_minutes, 30_minutes, hour, day,
    /// week, month`, plus `duplicates` (answered without a second delivery).
    pub(crate) fn snapshot(&self, now: u64) -> Value {
        let minute = now / 60;
        let hour = now / 3600;
        let mut map = Map::new();
        map.insert("total".into(), self.total.into());
        for &(name, n) in MINUTE_WINDOWS {
            map.insert(name.into(), sum(&self.minutes[..], minute, n).into());
        }
        for &(name, n) in HOUR_WINDOWS {
            map.insert(name.into(), sum(&self.hours[..], hour, n).into());
        }
        map.insert("duplicates".into(), self.duplicates.into());
        map.insert("filtered".into(), self.filtered.into());
        Value::Object(map)
    }
}

fn bump(slots: &mut [(u64, u64)], unit: u64) {
    let len = slots.len() as u64;
    let slot = &mut slots[(unit % len) as usize];
    if slot.0 != unit {
        *slot = (unit, 0);
    }
    slot.1 += 1;
}

/// A shared store of the `/stats` counters (e.g. Redis), so that several instances report
/// the same totals and counts survive restarts. The pipeline records into it next to its
/// own in-memory windows.
pub trait StatsStore: std::fmt::Debug + Send + Sync + 'static {
    /// Count one request of `webhook_id` received at Unix time `at` (seconds). Must return
    /// at once: buffer and write in the background; never fail the request.
    fn record(&self, webhook_id: &str, at: u64);

    /// The counts of `webhook_ids` at Unix time `now`, as
    /// `{id: {total, minute, 5_minutes, 15_minutes, 30_minutes, hour, day, week, month}}`.
    fn snapshot<'a>(
        &'a self,
        webhook_ids: &'a [&'a str],
        now: u64,
    ) -> crate::BoxFuture<'a, Result<Value, String>>;
}

/// The windows of the original's `/stats` shape: (name, minutes) for the minute windows
/// and (name, hours) for the hour windows, each counted back from the current unit.
pub const MINUTE_WINDOWS: &[(&str, u64)] = &[
    ("minute", 1),
    ("5_minutes", 5),
    ("15_minutes", 15),
    ("30_minutes", 30),
    ("hour", 60),
];
/// See [`MINUTE_WINDOWS`].
pub const HOUR_WINDOWS: &[(&str, u64)] = &[("day", 24), ("week", 24 * 7), ("month", 24 * 30)];

fn sum(slots: &[(u64, u64)], current: u64, n: u64) -> u64 {
    let oldest = current.saturating_sub(n - 1);
    slots
        .iter()
        .filter(|(unit, _)| *unit != u64::MAX && *unit >= oldest && *unit <= current)
        .map(|(_, count)| count)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_roll_over() {
        let mut s = StatsWindows::default();
        let t0 = 1_700_000_000 - 1_700_000_000 % 3600; // start of an hour
        s.record(t0);
        s.record(t0 + 61); // next minute
        s.record(t0 + 10 * 60); // 10 minutes later
        let now = t0 + 10 * 60 + 5;
        let v = s.snapshot(now);
        assert_eq!(v["total"], 3);
        assert_eq!(v["minute"], 1);
        assert_eq!(v["5_minutes"], 1);
        assert_eq!(v["15_minutes"], 3);
        assert_eq!(v["hour"], 3);
        assert_eq!(v["day"], 3);
        // two hours later: minute windows empty, day still counts
        let v = s.snapshot(t0 + 2 * 3600);
        assert_eq!(v["hour"], 0);
        assert_eq!(v["day"], 3);
        assert_eq!(v["month"], 3);
        // 31 days later only the total remains
        let v = s.snapshot(t0 + 31 * 86_400);
        assert_eq!(v["month"], 0);
        assert_eq!(v["total"], 3);
    }
}
