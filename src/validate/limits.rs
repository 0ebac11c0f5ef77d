//! Frame limits: bytes and JSON nesting depth.

use serde_json::Value;

use super::{Frame, InputValidator, ValidationError};

/// Refuses messages over a byte size or nesting depth, before anything else runs.
///
/// When the transport reports the encoded size, that is checked; otherwise (an SDK adapter
/// that hands over parsed values) the arguments are walked once and their size is estimated
/// from their content, stopping as soon as a limit is crossed.
#[derive(Debug, Clone, Copy)]
pub struct FrameLimits {
    max_bytes: usize,
    max_depth: usize,
}

impl Default for FrameLimits {
    /// 4 MiB (rmcp's own HTTP body limit) and 64 levels.
    fn default() -> Self {
        FrameLimits {
            max_bytes: 4 * 1024 * 1024,
            max_depth: 64,
        }
    }
}

impl FrameLimits {
    /// Limits of `max_bytes` bytes and `max_depth` levels of nesting.
    pub fn new(max_bytes: usize, max_depth: usize) -> Self {
        FrameLimits {
            max_bytes,
            max_depth,
        }
    }

    /// The byte limit.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The depth limit.
    pub fn max_depth(&self) -> usize {
        self.max_depth
    }

    /// Walks `value` (at nesting level `depth`), adding its estimated encoded size to `size`.
    fn walk(&self, value: &Value, depth: usize, size: &mut usize) -> Result<(), ValidationError> {
        if depth > self.max_depth {
            return Err(ValidationError::TooDeep {
                limit: self.max_depth,
            });
        }
        *size += match value {
            Value::Null | Value::Bool(_) => 5,
            Value::Number(_) => 8,
            Value::String(s) => s.len() + 2,
            Value::Array(items) => {
                for item in items {
                    self.walk(item, depth + 1, size)?;
                }
                items.len() + 2
            }
            Value::Object(map) => {
                for (k, v) in map {
                    *size += k.len() + 4;
                    self.walk(v, depth + 1, size)?;
                }
                2
            }
        };
        if *size > self.max_bytes {
            return Err(ValidationError::TooLarge {
                limit: self.max_bytes,
            });
        }
        Ok(())
    }
}

impl InputValidator for FrameLimits {
    fn check_frame(&self, frame: &Frame<'_>) -> Result<(), ValidationError> {
        if frame.encoded_len().is_some_and(|n| n > self.max_bytes) {
            return Err(ValidationError::TooLarge {
                limit: self.max_bytes,
            });
        }
        let mut size = frame.action().target().map_or(0, str::len);
        if let Some(args) = frame.action().arguments() {
            for (k, v) in args {
                size += k.len() + 4;
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Action;
    use serde_json::json;

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
