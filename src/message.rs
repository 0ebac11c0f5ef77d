//! What is being asked: the JSON-RPC envelope ([`Message`]) and the MCP [`Action`] inside it.
//!
//! [`Action`] is a borrowed view: adapters build it from their SDK's typed request without
//! copying arguments, and [`Message::parse`] builds it from raw bytes (the CLI, the proxy).
//!
//! ```
//! use mcp_security::{Action, Message};
//!
//! let msg = Message::parse(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call",
//!     "params":{"name":"echo","arguments":{"text":"hi"}}}"#)?;
//! let envelope = &msg.envelopes()[0];
//! match envelope.action()? {
//!     Action::CallTool { name, .. } => assert_eq!(name, "echo"),
//!     other => panic!("unexpected {other:?}"),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use serde_json::{Map, Value};

use crate::context::CorrelationId;

/// The kind of list a `*/list` request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ListKind {
    /// `tools/list`
    Tools,
    /// `resources/list`
    Resources,
    /// `resources/templates/list`
    ResourceTemplates,
    /// `prompts/list`
    Prompts,
}

impl ListKind {
    /// The JSON-RPC method.
    pub fn method(self) -> &'static str {
        match self {
            ListKind::Tools => "tools/list",
            ListKind::Resources => "resources/list",
            ListKind::ResourceTemplates => "resources/templates/list",
            ListKind::Prompts => "prompts/list",
        }
    }
}

/// The MCP operation a message asks for, borrowed from the message.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Action<'a> {
    /// `initialize`
    Initialize,
    /// `ping`
    Ping,
    /// `tools/call`
    CallTool {
        /// The tool's name.
        name: &'a str,
        /// The arguments object, if any.
        arguments: Option<&'a Map<String, Value>>,
    },
    /// `resources/read`
    ReadResource {
        /// The resource URI, as sent.
        uri: &'a str,
    },
    /// `resources/subscribe` or `resources/unsubscribe`
    SubscribeResource {
        /// The resource URI, as sent.
        uri: &'a str,
        /// True for `resources/unsubscribe`.
        unsubscribe: bool,
    },
    /// `prompts/get`
    GetPrompt {
        /// The prompt's name.
        name: &'a str,
        /// The prompt arguments, if any.
        arguments: Option<&'a Map<String, Value>>,
    },
    /// One of the `*/list` requests; results are filtered to what the caller may use.
    List(ListKind),
    /// A notification (`notifications/...`).
    Notification {
        /// The method.
        method: &'a str,
    },
    /// Any other request (`completion/complete`, `logging/setLevel`, `tasks/get`, custom ...).
    Other {
        /// The method.
        method: &'a str,
    },
}

impl<'a> Action<'a> {
    /// The JSON-RPC method this action came from.
    pub fn method(&self) -> &'a str {
        match *self {
            Action::Notification { method } | Action::Other { method } => method,
            // Every other action has a protocol method.
            _ => self.protocol_method().unwrap_or_default(),
        }
    }

    /// The method as a `'static` string, for every action but `Notification` and `Other`
    /// (whose method is whatever the peer sent).
    pub fn protocol_method(&self) -> Option<&'static str> {
        Some(match *self {
            Action::Initialize => "initialize",
            Action::Ping => "ping",
            Action::CallTool { .. } => "tools/call",
            Action::ReadResource { .. } => "resources/read",
            Action::SubscribeResource {
                unsubscribe: false, ..
            } => "resources/subscribe",
            Action::SubscribeResource {
                unsubscribe: true, ..
            } => "resources/unsubscribe",
            Action::GetPrompt { .. } => "prompts/get",
            Action::List(kind) => kind.method(),
            Action::Notification { .. } | Action::Other { .. } => return None,
        })
    }

    /// The tool, prompt or resource the action targets.
    pub fn target(&self) -> Option<&'a str> {
        match *self {
            Action::CallTool { name, .. } | Action::GetPrompt { name, .. } => Some(name),
            Action::ReadResource { uri } | Action::SubscribeResource { uri, .. } => Some(uri),
            _ => None,
        }
    }

    /// The arguments of a tool call or prompt, if any.
    pub fn arguments(&self) -> Option<&'a Map<String, Value>> {
        match *self {
            Action::CallTool { arguments, .. } | Action::GetPrompt { arguments, .. } => arguments,
            _ => None,
        }
    }

    /// Builds the action for `method` with `params`, checking the parameter shapes the pipeline
    /// relies on (a `tools/call` needs a string `name` and an object `arguments`, ...).
    ///
    /// # Errors
    /// [`MessageError::InvalidParams`] when a required parameter is missing or has the wrong type.
    pub fn from_method(
        method: &'a str,
        params: Option<&'a Value>,
        notification: bool,
    ) -> Result<Self, MessageError> {
        if notification {
            return Ok(Action::Notification { method });
        }
        let obj = match params {
            None | Some(Value::Null) => None,
            Some(Value::Object(o)) => Some(o),
            Some(_) => {
                return Err(MessageError::InvalidParams {
                    field: "params",
                    expected: "an object",
                });
            }
        };
        let str_field = |field: &'static str| -> Result<&'a str, MessageError> {
            match obj.and_then(|o| o.get(field)) {
                Some(Value::String(s)) => Ok(s.as_str()),
                Some(_) => Err(MessageError::InvalidParams {
                    field,
                    expected: "a string",
                }),
                None => Err(MessageError::MissingParam { field }),
            }
        };
        let args_field = || -> Result<Option<&'a Map<String, Value>>, MessageError> {
            match obj.and_then(|o| o.get("arguments")) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Object(a)) => Ok(Some(a)),
                Some(_) => Err(MessageError::InvalidParams {
                    field: "arguments",
                    expected: "an object",
                }),
            }
        };
        Ok(match method {
            "initialize" => Action::Initialize,
            "ping" => Action::Ping,
            "tools/call" => Action::CallTool {
                name: str_field("name")?,
                arguments: args_field()?,
            },
            "resources/read" => Action::ReadResource {
                uri: str_field("uri")?,
            },
            "resources/subscribe" => Action::SubscribeResource {
                uri: str_field("uri")?,
                unsubscribe: false,
            },
            "resources/unsubscribe" => Action::SubscribeResource {
                uri: str_field("uri")?,
                unsubscribe: true,
            },
            "prompts/get" => Action::GetPrompt {
                name: str_field("name")?,
                arguments: args_field()?,
            },
            "tools/list" => Action::List(ListKind::Tools),
            "resources/list" => Action::List(ListKind::Resources),
            "resources/templates/list" => Action::List(ListKind::ResourceTemplates),
            "prompts/list" => Action::List(ListKind::Prompts),
            _ => Action::Other { method },
        })
    }
}

/// Why a message could not be read. Messages name the protocol field, never a request value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// Not JSON at all.
    #[error("message is not valid json")]
    NotJson,
    /// The frame is larger than the limit.
    #[error("message is larger than the frame limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Valid JSON but not a JSON-RPC object or batch.
    #[error("message is not a json-rpc object or batch")]
    NotObject,
    /// An empty batch.
    #[error("json-rpc batch is empty")]
    EmptyBatch,
    /// `jsonrpc` is not `"2.0"`.
    #[error("`jsonrpc` must be \"2.0\"")]
    WrongVersion,
    /// The id is not a string, an integer or null.
    #[error("`id` must be a string or an integer")]
    InvalidId,
    /// `method` is missing or not a string.
    #[error("`method` must be a string")]
    MissingMethod,
    /// An object has two keys that differ only in case (or are the same key twice): parsers
    /// disagree on which one counts, so what was checked may not be what is read.
    #[error("an object has keys that differ only in case")]
    AmbiguousKeys,
    /// A required parameter is missing.
    #[error("missing parameter `{field}`")]
    MissingParam {
        /// The parameter.
        field: &'static str,
    },
    /// A parameter has the wrong type.
    #[error("parameter `{field}` must be {expected}")]
    InvalidParams {
        /// The parameter.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
    },
}

/// What kind of JSON-RPC message an [`Envelope`] holds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvelopeKind {
    /// A request: answered by a response with the same id.
    Request,
    /// A notification: no id, no answer.
    Notification,
    /// A response (`result` or `error`) to an earlier request.
    Response,
}

/// One JSON-RPC message, owned.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    kind: EnvelopeKind,
    id: CorrelationId,
    method: Option<String>,
    params: Option<Value>,
}

impl Envelope {
    fn from_value(v: Value) -> Result<Self, MessageError> {
        let Value::Object(mut obj) = v else {
            return Err(MessageError::NotObject);
        };
        if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return Err(MessageError::WrongVersion);
        }
        let id = match obj.get("id") {
            None => None,
            Some(Value::Null) => Some(CorrelationId::None),
            Some(Value::String(s)) => Some(CorrelationId::Text(s.as_str().into())),
            Some(Value::Number(n)) => Some(CorrelationId::Number(
                n.as_i64().ok_or(MessageError::InvalidId)?,
            )),
            Some(_) => return Err(MessageError::InvalidId),
        };
        let method = match obj.remove("method") {
            Some(Value::String(m)) => Some(m),
            Some(_) => return Err(MessageError::MissingMethod),
            None => None,
        };
        let params = obj.remove("params");
        let kind = match (&method, &id) {
            (Some(_), Some(_)) => EnvelopeKind::Request,
            (Some(_), None) => EnvelopeKind::Notification,
            (None, Some(_)) if obj.contains_key("result") || obj.contains_key("error") => {
                EnvelopeKind::Response
            }
            (None, _) => return Err(MessageError::MissingMethod),
        };
        Ok(Envelope {
            kind,
            id: id.unwrap_or_default(),
            method,
            params,
        })
    }

    /// Request, notification or response.
    pub fn kind(&self) -> &EnvelopeKind {
        &self.kind
    }

    /// The JSON-RPC id.
    pub fn id(&self) -> &CorrelationId {
        &self.id
    }

    /// The method, for requests and notifications.
    pub fn method(&self) -> Option<&str> {
        self.method.as_deref()
    }

    /// The params, if present.
    pub fn params(&self) -> Option<&Value> {
        self.params.as_ref()
    }

    /// The MCP action this envelope asks for.
    ///
    /// # Errors
    /// [`MessageError`] when the envelope is a response or its params have the wrong shape.
    pub fn action(&self) -> Result<Action<'_>, MessageError> {
        let method = self.method.as_deref().ok_or(MessageError::MissingMethod)?;
        Action::from_method(
            method,
            self.params.as_ref(),
            self.kind == EnvelopeKind::Notification,
        )
    }
}

/// A parsed JSON-RPC message: one envelope, or a batch evaluated element by element.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    envelopes: Vec<Envelope>,
    batch: bool,
    encoded_len: usize,
}

impl Message {
    /// Parses one JSON-RPC message or batch. Never panics, whatever the input.
    ///
    /// # Errors
    /// [`MessageError`] naming what is wrong.
    pub fn parse(bytes: &[u8]) -> Result<Self, MessageError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|_| MessageError::NotJson)?;
        let encoded_len = bytes.len();
        match value {
            Value::Array(items) => {
                if items.is_empty() {
                    return Err(MessageError::EmptyBatch);
                }
                let envelopes = items
                    .into_iter()
                    .map(Envelope::from_value)
                    .collect::<Result<_, _>>()?;
                Ok(Message {
                    envelopes,
                    batch: true,
                    encoded_len,
                })
            }
            other => Ok(Message {
                envelopes: vec![Envelope::from_value(other)?],
                batch: false,
                encoded_len,
            }),
        }
    }

    /// The envelopes, in order (one unless this is a batch).
    pub fn envelopes(&self) -> &[Envelope] {
        &self.envelopes
    }

    /// Whether the message was a batch.
    pub fn is_batch(&self) -> bool {
        self.batch
    }

    /// The size of the message as received, in bytes.
    pub fn encoded_len(&self) -> usize {
        self.encoded_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_request_notification_and_batch() {
        let m = Message::parse(br#"[{"jsonrpc":"2.0","id":"a","method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"}]"#);
        let m = m.unwrap_or_else(|e| panic!("{e}"));
        assert!(m.is_batch());
        assert_eq!(m.envelopes()[0].kind(), &EnvelopeKind::Request);
        assert_eq!(m.envelopes()[0].action(), Ok(Action::Ping));
        assert_eq!(
            m.envelopes()[1].action(),
            Ok(Action::Notification {
                method: "notifications/initialized"
            })
        );
    }

    #[test]
    fn malformed_messages_get_clear_errors() {
        assert_eq!(Message::parse(b"{").err(), Some(MessageError::NotJson));
        assert_eq!(Message::parse(b"[]").err(), Some(MessageError::EmptyBatch));
        assert_eq!(Message::parse(b"3").err(), Some(MessageError::NotObject));
        assert_eq!(
            Message::parse(br#"{"id":1,"method":"ping"}"#).err(),
            Some(MessageError::WrongVersion)
        );
        assert_eq!(
            Message::parse(br#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#).err(),
            Some(MessageError::InvalidId)
        );
        assert_eq!(
            Message::parse(br#"{"jsonrpc":"2.0","id":1,"method":7}"#).err(),
            Some(MessageError::MissingMethod)
        );
        let m = Message::parse(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":3}}"#,
        );
        let m = m.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            m.envelopes()[0].action().err(),
            Some(MessageError::InvalidParams {
                field: "name",
                expected: "a string"
            })
        );
        let m = Message::parse(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":[1]}}"#);
        let m = m.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            m.envelopes()[0].action().err(),
            Some(MessageError::InvalidParams {
                field: "arguments",
                expected: "an object"
            })
        );
    }
}
