//! RFC 3339 UTC timestamps for log lines, without a date-time dependency.

use std::time::{SystemTime, UNIX_EPOCH};

const PAIR_BYTES: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

/// `"00"` through `"99"` back to back, so two digits are one copy.
const PAIRS: &str = match std::str::from_utf8(&PAIR_BYTES) {
    Ok(s) => s,
    Err(_) => panic!("digit pairs are ASCII"),
};

/// Appends the two digits of `n % 100`.
#[inline]
pub(crate) fn push_pair(out: &mut String, n: u64) {
    let i = 2 * (n % 100) as usize;
    out.push_str(&PAIRS[i..i + 2]);
}

/// Formats log timestamps as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (microseconds,
/// UTC), reusing the formatted date and time of day while the second stays
/// the same. The caller reads the clock for every event; only the text of
/// the current second is reused.
#[derive(Debug, Default)]
pub(crate) struct Timestamps {
    /// The second `prefix` shows.
    second: Option<u64>,
    /// `YYYY-MM-DDTHH:MM:SS` of `second`.
    prefix: String,
}

impl Timestamps {
    /// Appends `t`.
    pub(crate) fn write(&mut self, out: &mut String, t: SystemTime) {
        // Log timestamps are wall-clock by definition; times before 1970 clamp to the epoch.
        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = d.as_secs();
        if self.second != Some(secs) {
            self.prefix.clear();
            write_seconds(&mut self.prefix, secs);
            self.second = Some(secs);
        }
        out.reserve(self.prefix.len() + 8);
        out.push_str(&self.prefix);
        out.push('.');
        let micros = u64::from(d.subsec_micros());
        push_pair(out, micros / 10_000);
        push_pair(out, micros / 100);
        push_pair(out, micros);
        out.push('Z');
    }
}

fn write_seconds(out: &mut String, secs: u64) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, day) = civil_from_days(days);
    let (hh, mm, ss) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    push_num(out, y as u64, 4);
    out.push('-');
    push_num(out, u64::from(m), 2);
    out.push('-');
    push_num(out, u64::from(day), 2);
    out.push('T');
    push_num(out, hh, 2);
    out.push(':');
    push_num(out, mm, 2);
    out.push(':');
    push_num(out, ss, 2);
}

fn push_num(out: &mut String, mut v: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    while v > 0 || buf.len() - i < width {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or_default());
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, micros: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros)
    }

    /// Formatted by a fresh formatter, with nothing cached.
    fn fmt(secs: u64, micros: u64) -> String {
        let mut s = String::new();
        Timestamps::default().write(&mut s, at(secs, micros));
        s
    }

    #[test]
    fn the_per_second_cache_never_serves_a_stale_second() {
        let mut ts = Timestamps::default();
        let mut cached = |secs, micros| {
            let mut s = String::new();
            ts.write(&mut s, at(secs, micros));
            s
        };
        assert_eq!(cached(59, 999_999), "1970-01-01T00:00:59.999999Z");
        assert_eq!(cached(60, 0), "1970-01-01T00:01:00.000000Z");
        assert_eq!(cached(59, 1), "1970-01-01T00:00:59.000001Z");
    }

    #[test]
    fn the_per_second_cache_follows_every_second_boundary() {
        // One formatter across seconds that change at every call, then stay;
        // each result must match a fresh formatter's.
        let base = 1_795_446_245; // 2026-11-23T15:04:05Z
        let mut ts = Timestamps::default();
        for (secs, micros) in [
            (base, 999_999),
            (base + 1, 0),
            (base + 2, 0),
            (base + 3, 999_999),
            (base, 1),
            (base + 86_400, 42),
            (base + 86_400, 43),
            (base + 86_401, 0),
            (base + 86_401, 7),
            (1_798_761_599, 5),
            (1_798_761_600, 5),
        ] {
            let mut s = String::new();
            ts.write(&mut s, at(secs, micros));
            assert_eq!(s, fmt(secs, micros));
        }
        assert_eq!(fmt(base + 86_401, 7), "2026-11-24T15:04:06.000007Z");
        assert_eq!(fmt(1_798_761_599, 5), "2026-12-31T23:59:59.000005Z");
        assert_eq!(fmt(1_798_761_600, 5), "2027-01-01T00:00:00.000005Z");
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(fmt(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(fmt(951_782_400, 5), "2000-02-29T00:00:00.000005Z");
        assert_eq!(fmt(1_795_446_245, 123_456), "2026-11-23T15:04:05.123456Z");
        assert_eq!(fmt(1_795_446_245, 10_203), "2026-11-23T15:04:05.010203Z");
        assert_eq!(fmt(253_402_300_799, 1), "9999-12-31T23:59:59.000001Z");
        assert_eq!(fmt(253_402_300_800, 1), "10000-01-01T00:00:00.000001Z");
    }

    #[test]
    fn digit_pairs_cover_0_to_99() {
        for n in 0..100 {
            let mut s = String::new();
            push_pair(&mut s, n);
            assert_eq!(s, format!("{n:02}"));
        }
    }
}
