//! RFC 3339 UTC timestamps for log lines, without a date-time dependency.

use std::time::{SystemTime, UNIX_EPOCH};

/// `YYYY-MM-DDTHH:MM:SS`: the part of a timestamp that changes once a second.
type SecondPrefix = [u8; 19];

/// The first second of year 10000: later instants need more than four year
/// digits and skip the fixed-width cache.
const YEAR_10000: u64 = 253_402_300_800;

thread_local! {
    /// The formatted prefix of the last second seen on this thread.
    static LAST_SECOND: std::cell::Cell<(u64, SecondPrefix)> =
        const { std::cell::Cell::new((u64::MAX, [0; 19])) };
}

/// Appends `t` as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (microseconds, UTC).
/// The clock is read by the caller for every event; only the date and time
/// of day are reused, per thread, while the second stays the same.
pub(crate) fn write_rfc3339(out: &mut String, t: SystemTime) {
    // Log timestamps are wall-clock by definition; times before 1970 clamp to the epoch.
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    if secs >= YEAR_10000 {
        write_seconds(out, secs);
        out.push('.');
        push_num(out, u64::from(d.subsec_micros()), 6);
        out.push('Z');
        return;
    }
    let prefix = LAST_SECOND
        .try_with(|cell| {
            let (cached, prefix) = cell.get();
            if cached == secs {
                return prefix;
            }
            let prefix = second_prefix(secs);
            cell.set((secs, prefix));
            prefix
        })
        .unwrap_or_else(|_| second_prefix(secs));
    let mut ts = [0u8; 27];
    ts[..19].copy_from_slice(&prefix);
    ts[19] = b'.';
    let mut m = d.subsec_micros();
    for digit in ts[20..26].iter_mut().rev() {
        *digit = b'0' + (m % 10) as u8;
        m /= 10;
    }
    ts[26] = b'Z';
    // Every byte is an ASCII digit or separator.
    out.push_str(std::str::from_utf8(&ts).unwrap_or_default());
}

/// The fixed-width prefix for `secs` (before year 10000).
fn second_prefix(secs: u64) -> SecondPrefix {
    let mut s = String::with_capacity(19);
    write_seconds(&mut s, secs);
    let mut prefix = [b'0'; 19];
    if s.len() == prefix.len() {
        prefix.copy_from_slice(s.as_bytes());
    }
    prefix
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

    fn fmt(secs: u64, micros: u64) -> String {
        let mut s = String::new();
        write_rfc3339(
            &mut s,
            UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros),
        );
        s
    }

    #[test]
    fn the_per_second_cache_never_serves_a_stale_second() {
        assert_eq!(fmt(59, 999_999), "1970-01-01T00:00:59.999999Z");
        assert_eq!(fmt(60, 0), "1970-01-01T00:01:00.000000Z");
        assert_eq!(fmt(59, 1), "1970-01-01T00:00:59.000001Z");
    }

    #[test]
    fn the_per_second_cache_follows_every_second_boundary() {
        // Alternate seconds so every call changes the cached second, then
        // stay in one second; each result must match a fresh formatting.
        let base = 1_795_446_245; // 2026-11-23T15:04:05Z
        let mut expected = String::new();
        for (secs, micros) in [
            (base, 999_999),
            (base + 1, 0),
            (base + 2, 0),
            (base + 3, 999_999),
            (base, 1),
            (base + 86_400, 42),
            (base + 86_400, 43),
            (base + 86_401, 0),
        ] {
            expected.clear();
            write_seconds(&mut expected, secs);
            expected.push('.');
            push_num(&mut expected, micros, 6);
            expected.push('Z');
            assert_eq!(fmt(secs, micros), expected);
        }
        assert_eq!(fmt(base + 86_401, 7), "2026-11-24T15:04:06.000007Z");
        // Year-end rollover, and a year past the four-digit range.
        assert_eq!(fmt(1_798_761_599, 5), "2026-12-31T23:59:59.000005Z");
        assert_eq!(fmt(1_798_761_600, 5), "2027-01-01T00:00:00.000005Z");
        assert_eq!(fmt(YEAR_10000, 1), "10000-01-01T00:00:00.000001Z");
        assert_eq!(fmt(YEAR_10000 - 1, 1), "9999-12-31T23:59:59.000001Z");
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(fmt(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(fmt(951_782_400, 5), "2000-02-29T00:00:00.000005Z");
        assert_eq!(fmt(1_795_446_245, 123_456), "2026-11-23T15:04:05.123456Z");
    }
}
