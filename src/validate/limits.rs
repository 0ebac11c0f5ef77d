//! Frame limits: bytes, nesting depth, string and array sizes, argument counts, and invisible
//! characters.

use serde_json::{Map, Value};

use super::unicode::{self, Invisible};
use super::{ArgumentsOf, Frame, InputValidator, ValidationError};

/// Refuses messages over a byte size, nesting depth, string length, array length or argument
/// count, and arguments holding invisible Unicode characters, before anything else runs.
///
/// When the transport reports the encoded size, that is checked; otherwise (an SDK adapter
/// that hands over parsed values) the arguments are walked once and their size is estimated
/// from their content, stopping as soon as a limit is crossed. A transport that holds the raw
/// bytes can call [`check_raw`](Self::check_raw) before parsing anything.
#[derive(Debug, Clone, Copy)]
pub struct FrameLimits {
    max_bytes: usize,
    max_depth: usize,
    max_string_bytes: usize,
    max_array_len: usize,
    max_arguments: usize,
    invisible: Invisible,
}

impl Default for FrameLimits {
    /// 4 MiB (rmcp's own HTTP body limit), 64 levels, strings up to the frame size, arrays of
    /// 100,000 items, 256 arguments, invisible characters refused.
    fn default() -> Self {
        FrameLimits {
            max_bytes: 4 * 1024 * 1024,
            max_depth: 64,
            max_string_bytes: 4 * 1024 * 1024,
            max_array_len: 100_000,
            max_arguments: 256,
            invisible: Invisible::Refuse,
        }
    }
}

impl FrameLimits {
    /// Limits of `max_bytes` bytes and `max_depth` levels of nesting; the other limits at
    /// their defaults.
    pub fn new(max_bytes: usize, max_depth: usize) -> Self {
        FrameLimits {
            max_bytes,
            max_depth,
            max_string_bytes: max_bytes,
            ..FrameLimits::default()
        }
    }

    /// Strings (and object keys) of at most `n` bytes.
    pub fn with_max_string_bytes(mut self, n: usize) -> Self {
        self.max_string_bytes = n;
        self
    }

    /// Arrays (and objects) of at most `n` items.
    pub fn with_max_array_len(mut self, n: usize) -> Self {
        self.max_array_len = n;
        self
    }

    /// At most `n` top-level arguments.
    pub fn with_max_arguments(mut self, n: usize) -> Self {
        self.max_arguments = n;
        self
    }

    /// What to do with invisible characters in arguments (default: refuse).
    pub fn with_invisible(mut self, mode: Invisible) -> Self {
        self.invisible = mode;
        self
    }

    /// The byte limit.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The depth limit.
    pub fn max_depth(&self) -> usize {
        self.max_depth
    }

    fn string(&self, s: &str, size: &mut usize) -> Result<(), ValidationError> {
        if s.len() > self.max_string_bytes {
            if self.max_string_bytes >= self.max_bytes {
                return Err(ValidationError::TooLarge {
                    limit: self.max_bytes,
                });
            }
            return Err(ValidationError::Limit {
                what: "a string",
                limit: self.max_string_bytes,
            });
        }
        if self.invisible == Invisible::Refuse && unicode::has_invisible(s) {
            return Err(ValidationError::Invisible);
        }
        *size += s.len() + 2;
        Ok(())
    }

    /// Walks `value` (at nesting level `depth`), adding its estimated encoded size to `size`.
    fn walk(&self, value: &Value, depth: usize, size: &mut usize) -> Result<(), ValidationError> {
        if depth > self.max_depth {
            return Err(ValidationError::TooDeep {
                limit: self.max_depth,
            });
        }
        match value {
            Value::Null | Value::Bool(_) => *size += 5,
            Value::Number(_) => *size += 8,
            Value::String(s) => self.string(s, size)?,
            Value::Array(items) => {
                if items.len() > self.max_array_len {
                    return Err(ValidationError::Limit {
                        what: "an array",
                        limit: self.max_array_len,
                    });
                }
                for item in items {
                    self.walk(item, depth + 1, size)?;
                }
                *size += items.len() + 2;
            }
            Value::Object(map) => {
                if map.len() > self.max_array_len {
                    return Err(ValidationError::Limit {
                        what: "an object",
                        limit: self.max_array_len,
                    });
                }
                for (k, v) in map {
                    self.string(k, size)?;
                    *size += 2;
                    self.walk(v, depth + 1, size)?;
                }
                *size += 2;
            }
        }
        if *size > self.max_bytes {
            return Err(ValidationError::TooLarge {
                limit: self.max_bytes,
            });
        }
        Ok(())
    }

    /// Checks a raw JSON message before it is parsed: bytes, nesting depth, string lengths
    /// and array lengths, in one pass over the bytes without building anything. What is not
    /// valid JSON is left to the parser; this only bounds the work the parser will do.
    ///
    /// ```
    /// use mcp_security::validate::FrameLimits;
    ///
    /// let limits = FrameLimits::new(1 << 20, 8);
    /// assert!(limits.check_raw(br#"{"a":[1,2,{"b":"c"}]}"#).is_ok());
    /// assert!(limits.check_raw(&[b'['; 100]).is_err());
    /// ```
    ///
    /// # Errors
    /// The first limit crossed.
    pub fn check_raw(&self, bytes: &[u8]) -> Result<(), ValidationError> {
        if bytes.len() > self.max_bytes {
            return Err(ValidationError::TooLarge {
                limit: self.max_bytes,
            });
        }
        // Per open container: how many items it has so far (an array's commas + 1).
        let mut counts: Vec<usize> = Vec::new();
        let mut in_string = false;
        let mut escaped = false;
        let mut string_start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if in_string {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_string = false;
                    if i - string_start > self.max_string_bytes {
                        return Err(ValidationError::Limit {
                            what: "a string",
                            limit: self.max_string_bytes,
                        });
                    }
                }
                continue;
            }
            match b {
                b'"' => {
                    in_string = true;
                    string_start = i + 1;
                }
                b'[' | b'{' => {
                    if counts.len() >= self.max_depth {
                        return Err(ValidationError::TooDeep {
                            limit: self.max_depth,
                        });
                    }
                    counts.push(1);
                }
                b']' | b'}' => {
                    counts.pop();
                }
                b',' => {
                    if let Some(n) = counts.last_mut() {
                        *n += 1;
                        if *n > self.max_array_len {
                            return Err(ValidationError::Limit {
                                what: "an array",
                                limit: self.max_array_len,
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        if in_string && bytes.len() - string_start > self.max_string_bytes {
            return Err(ValidationError::Limit {
                what: "a string",
                limit: self.max_string_bytes,
            });
        }
        Ok(())
    }
}

/// Strips invisible characters from every string (and key) in `value`.
fn strip(value: &mut Value) {
    match value {
        Value::String(s) => {
            if let std::borrow::Cow::Owned(o) = unicode::strip_invisible(s) {
                *s = o;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip),
        Value::Object(map) => strip_map(map),
        _ => {}
    }
}

fn strip_map(map: &mut Map<String, Value>) {
    if map.keys().any(|k| unicode::has_invisible(k)) {
        let old = std::mem::take(map);
        let (hidden, visible): (Vec<_>, Vec<_>) = old
            .into_iter()
            .partition(|(k, _)| unicode::has_invisible(k));
        map.extend(visible);
        for (k, v) in hidden {
            let stripped = unicode::strip_invisible(&k).into_owned();
            // `path` and `path\u{200b}`: stripped, the second would replace the first. It
            // stays as sent instead, so the checks see both keys and the handler gets exactly
            // what was checked. (A key with an invisible character never equals a stripped one.)
            if map.contains_key(&stripped) {
                map.insert(k, v);
            } else {
                map.insert(stripped, v);
            }
        }
    }
    map.values_mut().for_each(strip);
}

impl InputValidator for FrameLimits {
    fn check_frame(&self, frame: &Frame<'_>) -> Result<(), ValidationError> {
        if frame.encoded_len().is_some_and(|n| n > self.max_bytes) {
            return Err(ValidationError::TooLarge {
                limit: self.max_bytes,
            });
        }
        let action = frame.action();
        let mut size = action.target().map_or(0, str::len);
        if self.invisible == Invisible::Refuse
            && action.target().is_some_and(unicode::has_invisible)
        {
            return Err(ValidationError::Invisible);
        }
        if let Some(args) = action.arguments() {
            if args.len() > self.max_arguments {
                return Err(ValidationError::Limit {
                    what: "arguments",
                    limit: self.max_arguments,
                });
            }
            for (k, v) in args {
                self.string(k, &mut size)?;
                size += 2;
                // The arguments object sits at depth 3 of the message (envelope, params, arguments).
                self.walk(v, 4, &mut size)?;
            }
        }
        if size > self.max_bytes {
            return Err(ValidationError::TooLarge {
                limit: self.max_bytes,
            });
        }
        Ok(())
    }

    fn normalize_arguments(&self, _target: ArgumentsOf<'_>, args: &mut Map<String, Value>) {
        if self.invisible == Invisible::Strip {
            strip_map(args);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Action;
    use serde_json::json;

    #[test]
    fn stripping_never_lets_one_key_replace_another() {
        let mut args = json!({"path": "/srv/data/ok", "path\u{200b}": "/etc/passwd", "no\u{200b}te": "a\u{200b}b"})
            .as_object()
            .unwrap()
            .clone();
        strip_map(&mut args);
        assert_eq!(
            Value::Object(args),
            json!({"path": "/srv/data/ok", "path\u{200b}": "/etc/passwd", "note": "ab"})
        );
    }

    #[test]
    fn depth_and_size_from_arguments() {
        let limits = FrameLimits::new(100, 6);
        let mut deep = json!(1);
        for _ in 0..10 {
            deep = json!([deep]);
        }
        let args = json!({ "deep": deep });
        let action = Action::CallTool {
            name: "t",
            arguments: args.as_object(),
        };
        assert_eq!(
            limits.check_frame(&Frame::new(&action, None)),
            Err(ValidationError::TooDeep { limit: 6 })
        );
        let args = json!({ "big": "x".repeat(200) });
        let action = Action::CallTool {
            name: "t",
            arguments: args.as_object(),
        };
        assert_eq!(
            limits.check_frame(&Frame::new(&action, None)),
            Err(ValidationError::TooLarge { limit: 100 })
        );
        let args = json!({ "ok": [1, 2, {"a": "b"}] });
        let action = Action::CallTool {
            name: "t",
            arguments: args.as_object(),
        };
        assert_eq!(limits.check_frame(&Frame::new(&action, None)), Ok(()));
    }
}
