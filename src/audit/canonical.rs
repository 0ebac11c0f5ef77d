//! Canonical JSON for hashing: object keys in byte order, no whitespace, serde_json's number
//! and string forms. Two encodings of the same value are the same bytes, so a verifier can
//! re-encode a parsed record and get the bytes that were hashed.

use serde::Serialize;
use serde_json::Value;

use super::AuditError;

/// Appends the canonical JSON of `value` to `out`.
///
/// # Errors
/// [`AuditError::Encode`] when `value` does not serialize to JSON (a map with non-string keys).
pub fn to_canonical_json<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), AuditError> {
    let v = serde_json::to_value(value).map_err(|_| AuditError::Encode)?;
    write_value(&v, out);
    Ok(())
}

/// Appends the canonical JSON of an already parsed value.
pub(crate) fn write_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(map) => {
            // Sorted here rather than trusting the map type: serde_json's `preserve_order`
            // feature, switched on by any crate in the build, would keep insertion order.
            let mut keys: Vec<(&String, &Value)> = map.iter().collect();
            keys.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, val)) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(k, out);
                out.push(b':');
                write_value(val, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

/// Appends `map`'s fields but those named in `skip`, canonically, without the braces; returns
/// how many were written.
pub(crate) fn write_fields_except(
    map: &serde_json::Map<String, Value>,
    skip: &[&str],
    out: &mut Vec<u8>,
) -> usize {
    let mut keys: Vec<(&String, &Value)> = map
        .iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .collect();
    keys.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    for (i, (k, val)) in keys.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(k, out);
        out.push(b':');
        write_value(val, out);
    }
    keys.len()
}

fn write_str(s: &str, out: &mut Vec<u8>) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn write_scalar(v: &Value, out: &mut Vec<u8>) {
    // Writing a scalar into a Vec cannot fail; an error would leave `out` as it was.
    let _ = serde_json::to_writer(&mut *out, v);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_sorted_and_compact() {
        let mut out = Vec::new();
        to_canonical_json(&json!({"b": 1, "a": {"d": [1, "x"], "c": null}}), &mut out).unwrap();
        assert_eq!(out, br#"{"a":{"c":null,"d":[1,"x"]},"b":1}"#);
    }

    #[test]
    fn reparsing_gives_the_same_bytes() {
        let mut a = Vec::new();
        to_canonical_json(&json!({"z": "\u{2028}\"\\", "y": 1.5, "x": -3}), &mut a).unwrap();
        let parsed: Value = serde_json::from_slice(&a).unwrap();
        let mut b = Vec::new();
        write_value(&parsed, &mut b);
        assert_eq!(a, b);
    }
}
