//! Internally tagged enums (`{"type": "...", ...}`) read without serde's buffering.
//!
//! serde's derive for `#[serde(tag = "type")]` reads the whole object into an intermediate tree
//! before it knows the variant, then reads the variant from that tree: for a stream's events, parsed
//! one by one as they are relayed, that was most of the cost of the parse. Anthropic and Bedrock
//! write `type` first, so this reads the first key, and when it is `type`, reads the rest of the
//! object straight into the variant's fields. Any other order still parses: the object is read
//! into a `serde_json` map first, then the variant from it.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserializer;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, MapAccess, Visitor};
use serde_json::{Map, Value};

/// An enum tagged by `type`, read by [`deserialize`].
pub(crate) trait TypeFirst: Sized {
    /// The enum's name, for error messages.
    const NAME: &'static str;
    /// The `type` values, for error messages.
    const VARIANTS: &'static [&'static str];

    /// Reads the fields of the variant `kind` from `rest` (the object without its `type`; keys
    /// that are not the variant's fields are ignored, as serde's derive does). `None` when `kind`
    /// is not a variant (checked before `rest` is read).
    fn variant<'de, D: Deserializer<'de>>(kind: &str, rest: D) -> Option<Result<Self, D::Error>>;
}

/// Reads a `T` from an object tagged by `type`.
pub(crate) fn deserialize<'de, T: TypeFirst, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    d.deserialize_map(TypeFirstVisitor(PhantomData))
}

struct TypeFirstVisitor<T>(PhantomData<T>);

impl<'de, T: TypeFirst> Visitor<'de> for TypeFirstVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "internally tagged enum {}", T::NAME)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let first: Option<Cow<'de, str>> = map.next_key()?;
        let Some(first) = first else {
            return Err(de::Error::missing_field("type"));
        };
        if first == "type" {
            let kind: Cow<'de, str> = map.next_value()?;
            return match T::variant(&kind, MapAccessDeserializer::new(&mut map)) {
                Some(result) => result,
                None => Err(de::Error::unknown_variant(&kind, T::VARIANTS)),
            };
        }
        // `type` later on: the object into a map, then the variant from it.
        let mut object = Map::new();
        object.insert(first.into_owned(), map.next_value()?);
        while let Some((key, value)) = map.next_entry::<String, Value>()? {
            object.insert(key, value);
        }
        let kind = match object.shift_remove("type") {
            Some(Value::String(kind)) => kind,
            Some(other) => {
                return Err(de::Error::invalid_type(
                    unexpected(&other),
                    &"a string `type`",
                ));
            }
            None => return Err(de::Error::missing_field("type")),
        };
        match T::variant(&kind, Value::Object(object)) {
            Some(result) => result.map_err(de::Error::custom),
            None => Err(de::Error::unknown_variant(&kind, T::VARIANTS)),
        }
    }
}

fn unexpected(v: &Value) -> de::Unexpected<'_> {
    match v {
        Value::Null => de::Unexpected::Unit,
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Number(_) => de::Unexpected::Other("a number"),
        Value::String(s) => de::Unexpected::Str(s),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Object(_) => de::Unexpected::Map,
    }
}

#[cfg(test)]
mod tests {
    use crate::{
        ContentBlock, Delta, DeltaUsage, ErrorBody, Message, MessageDeltaBody, StreamEvent,
    };
    use serde::{Deserialize, Serialize};
    use serde_json::Value;

    /// What serde's derive makes of the same shapes: the reference.
    #[derive(Debug, Serialize, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum Derived {
        MessageStart {
            message: Message,
        },
        ContentBlockStart {
            index: usize,
            content_block: ContentBlock,
        },
        ContentBlockDelta {
            index: usize,
            delta: DerivedDelta,
        },
        ContentBlockStop {
            index: usize,
        },
        MessageDelta {
            delta: MessageDeltaBody,
            usage: DeltaUsage,
        },
        MessageStop,
        Ping,
        Error {
            error: ErrorBody,
        },
    }

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    #[allow(clippy::enum_variant_names, reason = "the wire's names")]
    enum DerivedDelta {
        TextDelta { text: String },
        InputJsonDelta { partial_json: String },
        ThinkingDelta { thinking: String },
        SignatureDelta { signature: String },
        CitationsDelta { citation: Value },
    }

    #[test]
    fn events_read_as_the_derive_reads_them_in_any_key_order() {
        let cases = [
            r#"{"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"x","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":1,"service_tier":"standard"},"container":null}}"#,
            r#"{"message":{"id":"m","type":"message","role":"assistant","model":"x","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":1}},"type":"message_start"}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            r#"{"index":1,"content_block":{"type":"tool_use","id":"t","name":"n","input":{}},"type":"content_block_start"}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi \"there\"\n"}}"#,
            r#"{"type":"content_block_delta","delta":{"partial_json":"{\"a\":","type":"input_json_delta"},"index":2}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hm"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"s"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"citations_delta","citation":{"type":"char_location","cited_text":"c"}}}"#,
            r#"{"type":"content_block_stop","index":0,"extra":true}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":5,"input_tokens":3},"context_management":{}}"#,
            r#"{"type":"message_stop"}"#,
            r#"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":3}}"#,
            r#"{"type":"ping"}"#,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"busy"}}"#,
            // Refused by both.
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"new_delta","x":1}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta"}}"#,
            r#"{"type":"content_block_stop"}"#,
            r#"{"type":"content_block_stop","index":"zero"}"#,
            r#"{"type":"something_new","a":1}"#,
            r#"{"type":5,"index":0}"#,
            r#"{"index":0}"#,
            r#"{}"#,
            r#"[]"#,
            r#""ping""#,
            r#"{"type":"ping""#,
        ];
        for case in cases {
            let ours = serde_json::from_str::<StreamEvent>(case);
            let derived = serde_json::from_str::<Derived>(case);
            match (&ours, &derived) {
                (Ok(o), Ok(d)) => assert_eq!(
                    serde_json::to_value(o).unwrap(),
                    serde_json::to_value(d).unwrap(),
                    "{case}"
                ),
                (Err(_), Err(_)) => {}
                _ => panic!("{case}: ours {ours:?}, derived {derived:?}"),
            }
            // And from a tree (the cache and the Converse route read events from `Value`s).
            if let Ok(v) = serde_json::from_str::<Value>(case) {
                assert_eq!(
                    serde_json::from_value::<StreamEvent>(v.clone()).is_ok(),
                    serde_json::from_value::<Derived>(v).is_ok(),
                    "{case}"
                );
            }
        }
        // The variant is named in the error of an unknown type.
        let e = serde_json::from_str::<StreamEvent>(r#"{"type":"nope"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown variant `nope`"), "{e}");
        let e = serde_json::from_str::<Delta>(r#"{"type":"text_delta"}"#).unwrap_err();
        assert!(e.to_string().contains("missing field `text`"), "{e}");
    }
}
