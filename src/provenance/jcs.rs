//! RFC 8785 JSON Canonicalization Scheme (JCS): one byte string per JSON value.
//!
//! - object members sorted by their names' UTF-16 code units (not UTF-8 bytes: the two
//!   orders differ for characters above U+FFFF), no whitespace;
//! - strings escaped as ECMAScript `JSON.stringify` does: `\"`, `\\`, `\b`, `\f`, `\n`, `\r`,
//!   `\t`, other controls below U+0020 as `\u00xx` (lowercase hex), everything else literal;
//! - numbers as IEEE 754 doubles printed by ECMAScript `Number.prototype.toString`
//!   (shortest round-trip digits; exponent form below 1e-6 and from 1e21; `-0` as `0`).
//!   Integers beyond 2^53 therefore lose precision, exactly as in every JCS implementation.
//!
//! Numbers are taken as serde_json parsed them. serde_json's default float parser can be one
//! unit in the last place off for some 17-digit inputs (its `float_roundtrip` feature fixes
//! that, at twice the parsing cost); the same text always parses the same way, so
//! fingerprints stay stable, but such a number may canonicalise differently from another JCS
//! implementation.
//!
//! ```
//! use mcp_security::provenance::jcs;
//! let v = serde_json::json!({"b": [1.0, 1e21, 0.000001], "a": "\u{1f600}\n"});
//! assert_eq!(jcs::to_string(&v), "{\"a\":\"\u{1f600}\\n\",\"b\":[1,1e+21,0.000001]}");
//! ```

use std::fmt::Write as _;

use serde_json::Value;

/// The canonical form of `value`.
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n.as_f64().unwrap_or(0.0)),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push('{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, k);
                out.push(':');
                write_value(out, v);
            }
            out.push('}');
        }
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// ECMAScript `Number.prototype.toString` for a finite double.
fn write_number(out: &mut String, f: f64) {
    if f == 0.0 || !f.is_finite() {
        // serde_json never holds NaN or infinities; -0 prints as 0.
        out.push('0');
        return;
    }
    if f < 0.0 {
        out.push('-');
    }
    // `{:e}` prints the shortest digits that round-trip, as ECMAScript requires.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let k = i64::try_from(digits.len()).unwrap_or(i64::MAX);
    // n: the position of the decimal point relative to the digits (value = 0.digits * 10^n).
    let n = exp.parse::<i64>().unwrap_or(0) + 1;
    if k <= n && n <= 21 {
        out.push_str(&digits);
        for _ in 0..(n - k) {
            out.push('0');
        }
    } else if 0 < n && n <= 21 {
        let (int, frac) = digits.split_at(usize::try_from(n).unwrap_or(0));
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        for _ in 0..(-n) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let e = n - 1;
        let _ = write!(out, "e{}{}", if e < 0 { '-' } else { '+' }, e.abs());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(f: f64) -> String {
        let mut s = String::new();
        write_number(&mut s, f);
        s
    }

    #[test]
    fn numbers_follow_ecmascript() {
        // Values from RFC 8785 appendix B and the ECMAScript spec.
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-1.5, "-1.5"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (123456789012345680000.0, "123456789012345680000"),
            (0.000001, "0.000001"),
            (0.0000001, "1e-7"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (9007199254740992.0, "9007199254740992"),
            (9007199254740994.0, "9007199254740994"),
            (295147905179352830000.0, "295147905179352830000"),
            (4.5, "4.5"),
            (2e-3, "0.002"),
            (0.1 + 0.2, "0.30000000000000004"),
            (333333333.3333333, "333333333.3333333"),
            (1e23, "1e+23"),
        ];
        for (f, want) in cases {
            assert_eq!(num(*f), *want, "{f:e}");
        }
    }

    #[test]
    fn keys_sort_by_utf16() {
        // U+FB33 sorts after U+1F600 in UTF-16 (0xD83D < 0xFB33) but before it in UTF-8.
        let v = serde_json::json!({"\u{fb33}": 1, "\u{1f600}": 2, "a": 3, "\u{80}": 4});
        assert_eq!(
            to_string(&v),
            "{\"a\":3,\"\u{80}\":4,\"\u{1f600}\":2,\"\u{fb33}\":1}"
        );
    }

    #[test]
    fn strings_escape_like_json_stringify() {
        let v = serde_json::json!("\u{0}\u{1f}\"\\/\u{7f}\u{2028}\t");
        assert_eq!(
            to_string(&v),
            "\"\\u0000\\u001f\\\"\\\\/\u{7f}\u{2028}\\t\""
        );
    }
}
