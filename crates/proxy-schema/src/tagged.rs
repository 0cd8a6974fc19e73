//! Internally tagged enums (`{"type": "...", ...}`) read without serde's buffering.
//!
//! serde's derive for `#[serde(tag = "type")]` reads the whole object into an intermediate tree
//! before it knows the variant, then reads the variant from that tree: for a stream's events, parsed
//! one by one as they are relayed, that was most of the cost of the parse. This reads the keys up
//! to `type`, keeping them (Anthropic and Bedrock write `type` first; Claude Code writes a tool
//! result's `tool_use_id` before it), then reads the variant's fields from those keys followed by
//! the rest of the object, straight from the input. Stream events and deltas are read this way, and
//! content blocks in [`crate::parse`]'s first pass.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// An enum tagged by `type`, read by [`deserialize`].
pub(crate) trait TypeFirst: Sized {
    /// The enum's name, for error messages.
    const NAME: &'static str;
    /// The `type` values, for error messages.
    const VARIANTS: &'static [&'static str];
    /// What an object of any other `type` becomes, whole (its keys in their order, `type` among
    /// them); `None`: it is refused as an unknown variant.
    const OTHER: Option<fn(Map<String, Value>) -> Self> = None;

    /// Reads the fields of the variant `kind` from `rest` (the object without its `type`; keys
    /// that are not the variant's fields are ignored, as serde's derive does). `None` when `kind`
    /// is not a variant (checked before `rest` is read).
    fn variant<'de, D: Deserializer<'de>>(kind: &str, rest: D) -> Option<Result<Self, D::Error>>;

    /// Whether the value read shows a second `type` key (one kept among its unknown fields).
    /// Such an object is refused: which of the two is meant is not clear.
    fn repeats_type(&self) -> bool {
        false
    }
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
        let mut before = Vec::new();
        let kind: Cow<'de, str> = loop {
            match map.next_key::<Key>()? {
                Some(Key::Type) => break map.next_value()?,
                Some(Key::Other(key)) => before.push((key, map.next_value::<Value>()?)),
                None => return Err(de::Error::missing_field("type")),
            }
        };
        let mut rest = Rest {
            before: before.into_iter(),
            value: None,
            map,
        };
        let value = match T::variant(&kind, MapAccessDeserializer::new(&mut rest)) {
            Some(result) => result?,
            None => {
                let Some(other) = T::OTHER else {
                    return Err(de::Error::unknown_variant(&kind, T::VARIANTS));
                };
                // As the object was: the keys before `type`, `type`, the rest.
                let Rest { before, map, .. } = rest;
                let mut object: Map<String, Value> = before.collect();
                object.insert("type".to_owned(), Value::String(kind.into_owned()));
                let rest = Map::<String, Value>::deserialize(MapAccessDeserializer::new(map))?;
                for (key, value) in rest {
                    if key == "type" {
                        return Err(de::Error::duplicate_field("type"));
                    }
                    object.insert(key, value);
                }
                other(object)
            }
        };
        if value.repeats_type() {
            return Err(de::Error::duplicate_field("type"));
        }
        Ok(value)
    }
}

/// A key before `type`: `type` itself, or another (kept, to be read with the variant's fields).
enum Key {
    Type,
    Other(String),
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key, E> {
                Ok(if s == "type" {
                    Key::Type
                } else {
                    Key::Other(s.to_owned())
                })
            }
        }
        d.deserialize_str(V)
    }
}

/// The rest of an object after its `type`, preceded by the keys read before it.
struct Rest<A> {
    before: std::vec::IntoIter<(String, Value)>,
    value: Option<Value>,
    map: A,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Rest<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        if let Some((key, value)) = self.before.next() {
            self.value = Some(value);
            return seed.deserialize(key.into_deserializer()).map(Some);
        }
        self.map.next_key_seed(seed)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        match self.value.take() {
            Some(value) => seed.deserialize(value).map_err(de::Error::custom),
            None => self.map.next_value_seed(seed),
        }
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
        // A repeated `type`: the first one is the tag, wherever it is (the derive refuses it).
        for case in [
            r#"{"type":"ping","type":"message_stop"}"#,
            r#"{"x":1,"type":"ping","type":"message_stop"}"#,
        ] {
            let event = serde_json::from_str::<StreamEvent>(case).unwrap();
            assert!(matches!(event, StreamEvent::Ping), "{case}");
        }
        // Keys before `type` are read with the variant's fields, from text and from a tree.
        let case =
            r#"{"index":3,"delta":{"text":"a","type":"text_delta"},"type":"content_block_delta"}"#;
        for event in [
            serde_json::from_str::<StreamEvent>(case).unwrap(),
            serde_json::from_value::<StreamEvent>(serde_json::from_str(case).unwrap()).unwrap(),
        ] {
            let StreamEvent::ContentBlockDelta {
                index: 3,
                delta: Delta::TextDelta { text },
            } = event
            else {
                panic!("{event:?}");
            };
            assert_eq!(text, "a");
        }
        // The variant is named in the error of an unknown type.
        let e = serde_json::from_str::<StreamEvent>(r#"{"type":"nope"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown variant `nope`"), "{e}");
        let e = serde_json::from_str::<Delta>(r#"{"type":"text_delta"}"#).unwrap_err();
        assert!(e.to_string().contains("missing field `text`"), "{e}");
    }
}
