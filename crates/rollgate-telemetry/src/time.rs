//! RFC 3339 UTC timestamps for log lines, without a date-time dependency.

use std::time::{SystemTime, UNIX_EPOCH};

thread_local! {
    /// The formatted `YYYY-MM-DDTHH:MM:SS` of the last second seen on this thread.
    static LAST_SECOND: std::cell::RefCell<(u64, String)> =
        const { std::cell::RefCell::new((u64::MAX, String::new())) };
}

/// Appends `t` as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (microseconds, UTC).
/// The date and time of day are formatted once per second per thread.
pub(crate) fn write_rfc3339(out: &mut String, t: SystemTime) {
    // Log timestamps are wall-clock by definition; times before 1970 clamp to the epoch.
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let micros = d.subsec_micros();
    let cached = LAST_SECOND
        .try_with(|cell| {
            let Ok(mut c) = cell.try_borrow_mut() else {
                return false;
            };
            if c.0 != secs {
                c.1.clear();
                write_seconds(&mut c.1, secs);
                c.0 = secs;
            }
            out.push_str(&c.1);
            true
        })
        .unwrap_or(false);
    if !cached {
        write_seconds(out, secs);
    }
    out.push('.');
    let mut digits = [b'0'; 6];
    let mut m = micros;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (m % 10) as u8;
        m /= 10;
    }
    for d in digits {
        out.push(char::from(d));
    }
    out.push('Z');
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
    fn formats_known_instants() {
        assert_eq!(fmt(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(fmt(951_782_400, 5), "2000-02-29T00:00:00.000005Z");
        assert_eq!(fmt(1_795_446_245, 123_456), "2026-11-23T15:04:05.123456Z");
    }
}
