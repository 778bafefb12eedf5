//! Normalisers: rewrite a scalar into a canonical form before comparison so
//! that `100m` equals `0.1` CPU, `1m` equals `60s` and `1Gi` equals
//! `1073741824`.

use serde::Deserialize;

use crate::tree::{Number, Value};

/// One normaliser a rule can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Normaliser {
    /// Strip leading and trailing white space from strings.
    Trim,
    /// Compare strings case-insensitively (lowercases them).
    Case,
    /// Numbers written as strings equal the numbers (`"1.50"` = `1.5`).
    Number,
    /// Durations: `1m` = `60s` = `60000ms` = `60`; units ns, us, ms, s, m, h, d, w and
    /// compounds like `1h30m`; bare numbers are seconds.
    Duration,
    /// Sizes in bytes: `1Gi` = `1073741824`, `1G` = `1000000000`, `1KB` = `1000`;
    /// binary (Ki, Mi, Gi, Ti, Pi, Ei) and decimal (k, K, M, G, T, P, E) suffixes.
    Size,
    /// CPU quantities in cores: `100m` = `0.1` = `"0.1"`.
    Cpu,
    /// Booleans written as strings: `"true"`, `"yes"`, `"on"` = `true`;
    /// `"false"`, `"no"`, `"off"` = `false` (case-insensitive).
    Bool,
}

impl Normaliser {
    /// Applies the normaliser; values it does not understand are returned unchanged.
    ///
    /// ```
    /// use rollgate_drift::{Normaliser, Value, Number};
    /// let cpu = Normaliser::Cpu.apply(&Value::String("100m".into()));
    /// assert_eq!(cpu, Value::Number(Number::Float(0.1)));
    /// let size = Normaliser::Size.apply(&Value::String("1Gi".into()));
    /// assert_eq!(size, Value::Number(Number::Int(1_073_741_824)));
    /// ```
    #[must_use]
    pub fn apply(&self, value: &Value) -> Value {
        let out = match (self, value) {
            (Normaliser::Trim, Value::String(s)) => Some(Value::String(s.trim().into())),
            (Normaliser::Case, Value::String(s)) => Some(Value::String(s.to_lowercase())),
            (Normaliser::Number, Value::String(s)) => parse_number(s.trim()).map(num),
            (Normaliser::Duration, Value::String(s)) => parse_duration(s.trim()).map(num),
            (Normaliser::Size, Value::String(s)) => parse_size(s.trim()).map(num),
            (Normaliser::Cpu, Value::String(s)) => parse_cpu(s.trim()).map(num),
            (Normaliser::Bool, Value::String(s)) => parse_bool(s.trim()).map(Value::Bool),
            (
                Normaliser::Number | Normaliser::Duration | Normaliser::Size | Normaliser::Cpu,
                Value::Number(n),
            ) => Some(num(n.as_f64())),
            _ => None,
        };
        out.unwrap_or_else(|| value.clone())
    }
}

/// Canonical number: an integer when the value is integral and fits.
fn num(x: f64) -> Value {
    // Round to 12 significant decimals so unit arithmetic (0.1 * 3) compares
    // equal to the literal it denotes.
    let rounded = if x == 0.0 {
        0.0
    } else {
        let mag = x.abs().log10().floor();
        let scale = 10f64.powf(11.0 - mag);
        if scale.is_finite() && scale > 0.0 {
            (x * scale).round() / scale
        } else {
            x
        }
    };
    if rounded.is_finite() && rounded == rounded.trunc() && rounded.abs() < 9.0e15 {
        // Integral and well inside i64's exact range.
        #[allow(clippy::cast_possible_truncation)]
        Value::Number(Number::Int(rounded as i64))
    } else {
        Value::Number(Number::Float(rounded))
    }
}

fn parse_number(s: &str) -> Option<f64> {
    if s.is_empty() || s.eq_ignore_ascii_case("nan") || s.contains("inf") {
        return None;
    }
    s.parse::<f64>().ok().filter(|x| x.is_finite())
}

fn split_num(s: &str) -> Option<(f64, &str)> {
    let end = s
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || ((c == '-' || c == '+') && i == 0)))
        .map_or(s.len(), |(i, _)| i);
    let n = parse_number(&s[..end])?;
    Some((n, &s[end..]))
}

fn parse_duration(s: &str) -> Option<f64> {
    if let Some(n) = parse_number(s) {
        return Some(n);
    }
    let mut rest = s;
    let mut total = 0.0;
    while !rest.is_empty() {
        let (n, tail) = split_num(rest)?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let unit = &tail[..unit_len];
        let factor = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            "w" => 604_800.0,
            _ => return None,
        };
        total += n * factor;
        rest = &tail[unit_len..];
    }
    Some(total)
}

fn parse_size(s: &str) -> Option<f64> {
    let (n, unit) = split_num(s)?;
    let factor: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "Ki" | "KiB" => 1024.0,
        "Mi" | "MiB" => 1024f64.powi(2),
        "Gi" | "GiB" => 1024f64.powi(3),
        "Ti" | "TiB" => 1024f64.powi(4),
        "Pi" | "PiB" => 1024f64.powi(5),
        "Ei" | "EiB" => 1024f64.powi(6),
        "k" | "K" | "kB" | "KB" => 1e3,
        "M" | "MB" => 1e6,
        "G" | "GB" => 1e9,
        "T" | "TB" => 1e12,
        "P" | "PB" => 1e15,
        "E" | "EB" => 1e18,
        _ => return None,
    };
    Some(n * factor)
}

fn parse_cpu(s: &str) -> Option<f64> {
    let (n, unit) = split_num(s)?;
    match unit {
        "" => Some(n),
        "m" => Some(n / 1000.0),
        _ => None,
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" => Some(true),
        "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::String(x.into())
    }

    #[test]
    fn durations_in_any_unit_are_equal() {
        let d = Normaliser::Duration;
        assert_eq!(d.apply(&s("1m")), d.apply(&s("60s")));
        assert_eq!(d.apply(&s("1h30m")), d.apply(&s("5400")));
        assert_eq!(d.apply(&s("500ms")), d.apply(&s("0.5s")));
        assert_ne!(d.apply(&s("1m")), d.apply(&s("61s")));
        assert_eq!(d.apply(&s("soon")), s("soon"));
    }

    #[test]
    fn sizes_binary_and_decimal() {
        let z = Normaliser::Size;
        assert_eq!(
            z.apply(&s("1Gi")),
            Value::Number(Number::Int(1_073_741_824))
        );
        assert_eq!(z.apply(&s("1024Mi")), z.apply(&s("1Gi")));
        assert_eq!(z.apply(&s("1G")), Value::Number(Number::Int(1_000_000_000)));
        assert_ne!(z.apply(&s("1G")), z.apply(&s("1Gi")));
    }

    #[test]
    fn cpu_millicores_equal_cores() {
        let c = Normaliser::Cpu;
        assert_eq!(
            c.apply(&s("100m")),
            c.apply(&Value::Number(Number::Float(0.1)))
        );
        assert_eq!(c.apply(&s("1500m")), c.apply(&s("1.5")));
        assert_eq!(c.apply(&s("300m")), c.apply(&s("0.3")));
    }

    #[test]
    fn booleans_trim_case_and_numbers() {
        assert_eq!(Normaliser::Bool.apply(&s("Yes")), Value::Bool(true));
        assert_eq!(Normaliser::Bool.apply(&s("off")), Value::Bool(false));
        assert_eq!(Normaliser::Trim.apply(&s("  a ")), s("a"));
        assert_eq!(Normaliser::Case.apply(&s("ABC")), s("abc"));
        assert_eq!(
            Normaliser::Number.apply(&s("1.50")),
            Normaliser::Number.apply(&Value::Number(Number::Float(1.5)))
        );
    }
}
