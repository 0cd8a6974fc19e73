//! Converse response -> Anthropic message; stop reasons and usage.

use aws_sdk_bedrockruntime::operation::converse::ConverseOutput;
use aws_sdk_bedrockruntime::types::{
    self as bedrock, CacheTtl, CitationLocation, StopReason, TokenUsage,
};
use aws_smithy_types::Document;
use proxy_schema::{
    CacheCreation, ContentBlock, Message, RedactedThinkingBlock, TextBlock, ThinkingBlock,
    ToolUseBlock, Usage,
};
use serde_json::{Map, Value, json};

use crate::document::to_json;

/// The Anthropic stop reason for a Converse one. Converse's guardrail and content-filter stops become
/// `refusal`; its malformed-output stops have no Anthropic equivalent and become `end_turn`.
pub fn stop_reason(reason: &StopReason) -> String {
    match reason {
        StopReason::EndTurn => "end_turn",
        StopReason::ToolUse => "tool_use",
        StopReason::MaxTokens => "max_tokens",
        StopReason::StopSequence => "stop_sequence",
        StopReason::ModelContextWindowExceeded => "model_context_window_exceeded",
        StopReason::GuardrailIntervened | StopReason::ContentFiltered => "refusal",
        StopReason::MalformedModelOutput | StopReason::MalformedToolUse => "end_turn",
        other => {
            // Newer Converse reasons (e.g. Claude's `pause_turn`, `refusal`) pass through as named.
            return other.as_str().to_owned();
        }
    }
    .to_owned()
}

/// The matched stop sequence from `additionalModelResponseFields` (requested as `/stop_sequence`).
pub fn stop_sequence(fields: Option<&Document>) -> Option<String> {
    match fields? {
        Document::Object(o) => match o.get("stop_sequence")? {
            Document::String(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// Anthropic usage from Converse usage (Converse `inputTokens` is uncached input, like Anthropic's).
pub fn usage(u: Option<&TokenUsage>) -> Usage {
    let Some(u) = u else { return Usage::default() };
    let cache_creation = u
        .cache_details()
        .iter()
        .fold(None::<CacheCreation>, |acc, d| {
            let mut c = acc.unwrap_or_default();
            match d.ttl() {
                CacheTtl::OneHour => c.ephemeral_1h_input_tokens += d.input_tokens().max(0) as u64,
                _ => c.ephemeral_5m_input_tokens += d.input_tokens().max(0) as u64,
            }
            Some(c)
        });
    Usage {
        input_tokens: u.input_tokens().max(0) as u64,
        output_tokens: u.output_tokens().max(0) as u64,
        cache_creation_input_tokens: Some(u.cache_write_input_tokens().unwrap_or(0).max(0) as u64),
        cache_read_input_tokens: Some(u.cache_read_input_tokens().unwrap_or(0).max(0) as u64),
        cache_creation,
        extra: Map::new(),
    }
}

fn citation(c: &bedrock::Citation) -> Value {
    let cited_text: String = c
        .source_content()
        .iter()
        .filter_map(|s| s.as_text().ok().cloned())
        .collect();
    citation_json(c.title(), c.source(), cited_text, c.location())
}

/// An Anthropic citation object from the parts of a Converse citation (whole or streamed).
pub(crate) fn citation_json(
    title: Option<&str>,
    source: Option<&str>,
    cited_text: String,
    location: Option<&CitationLocation>,
) -> Value {
    match location {
        Some(CitationLocation::DocumentChar(l)) => {
            json!({"type": "char_location", "cited_text": cited_text,
            "document_index": l.document_index(), "document_title": title,
            "start_char_index": l.start(), "end_char_index": l.end()})
        }
        Some(CitationLocation::DocumentPage(l)) => {
            json!({"type": "page_location", "cited_text": cited_text,
            "document_index": l.document_index(), "document_title": title,
            "start_page_number": l.start(), "end_page_number": l.end()})
        }
        Some(CitationLocation::DocumentChunk(l)) => {
            json!({"type": "content_block_location", "cited_text": cited_text,
            "document_index": l.document_index(), "document_title": title,
            "start_block_index": l.start(), "end_block_index": l.end()})
        }
        Some(CitationLocation::SearchResultLocation(l)) => {
            json!({"type": "search_result_location", "cited_text": cited_text,
            "source": source, "title": title, "search_result_index": l.search_result_index(),
            "start_block_index": l.start(), "end_block_index": l.end()})
        }
        // ⚠ Lossy: Converse has no encrypted_index for web citations.
        Some(CitationLocation::Web(l)) => {
            json!({"type": "web_search_result_location", "cited_text": cited_text,
            "url": l.url(), "title": title, "encrypted_index": ""})
        }
        _ => {
            json!({"type": "char_location", "cited_text": cited_text, "document_index": 0, "document_title": title,
            "start_char_index": 0, "end_char_index": 0})
        }
    }
}

/// One Converse content block as an Anthropic block (`None` for blocks Anthropic has no form for).
pub fn content_block(block: &bedrock::ContentBlock) -> Option<ContentBlock> {
    Some(match block {
        bedrock::ContentBlock::Text(t) => ContentBlock::Text(TextBlock::new(t.clone())),
        bedrock::ContentBlock::ReasoningContent(bedrock::ReasoningContentBlock::ReasoningText(
            r,
        )) => ContentBlock::Thinking(ThinkingBlock {
            thinking: r.text().to_owned(),
            signature: r.signature().unwrap_or_default().to_owned(),
            extra: Map::new(),
        }),
        bedrock::ContentBlock::ReasoningContent(
            bedrock::ReasoningContentBlock::RedactedContent(b),
        ) => ContentBlock::RedactedThinking(RedactedThinkingBlock {
            data: String::from_utf8_lossy(b.as_ref()).into_owned(),
            extra: Map::new(),
        }),
        bedrock::ContentBlock::ToolUse(t) => ContentBlock::ToolUse(ToolUseBlock {
            id: t.tool_use_id().to_owned(),
            name: t.name().to_owned(),
            input: to_json(t.input()),
            cache_control: None,
            extra: Map::new(),
        }),
        bedrock::ContentBlock::CitationsContent(c) => {
            let text: String = c
                .content()
                .iter()
                .filter_map(|g| g.as_text().ok().cloned())
                .collect();
            let mut block = TextBlock::new(text);
            block.citations = Some(c.citations().iter().map(citation).collect());
            ContentBlock::Text(block)
        }
        other => {
            tracing::debug!(
                ?other,
                "dropping a Converse block Anthropic has no form for"
            );
            return None;
        }
    })
}

/// The Anthropic message for a Converse response. `id` is the message id to give it and `model` the
/// name the client asked for.
pub fn from_converse(output: &ConverseOutput, id: &str, model: &str) -> Message {
    let content = match output.output() {
        Some(bedrock::ConverseOutput::Message(m)) => {
            m.content().iter().filter_map(content_block).collect()
        }
        _ => Vec::new(),
    };
    let mut message = Message::start(id, model, usage(output.usage()));
    message.content = content;
    message.stop_reason = Some(stop_reason(output.stop_reason()));
    message.stop_sequence = stop_sequence(output.additional_model_response_fields());
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_bedrockruntime::types::{
        CacheDetail, Citation, CitationGeneratedContent, CitationSourceContent,
        CitationsContentBlock, DocumentCharLocation, DocumentPageLocation,
    };

    #[test]
    fn stop_reasons() {
        let table = [
            (StopReason::EndTurn, "end_turn"),
            (StopReason::ToolUse, "tool_use"),
            (StopReason::MaxTokens, "max_tokens"),
            (StopReason::StopSequence, "stop_sequence"),
            (
                StopReason::ModelContextWindowExceeded,
                "model_context_window_exceeded",
            ),
            (StopReason::GuardrailIntervened, "refusal"),
            (StopReason::ContentFiltered, "refusal"),
            (StopReason::MalformedModelOutput, "end_turn"),
            (StopReason::MalformedToolUse, "end_turn"),
            (StopReason::from("pause_turn"), "pause_turn"),
        ];
        for (converse, anthropic) in table {
            assert_eq!(stop_reason(&converse), anthropic);
        }
    }

    #[test]
    fn usage_with_cache_details() {
        let u = TokenUsage::builder()
            .input_tokens(10)
            .output_tokens(20)
            .total_tokens(60)
            .cache_read_input_tokens(5)
            .cache_write_input_tokens(25)
            .cache_details(
                CacheDetail::builder()
                    .ttl(CacheTtl::OneHour)
                    .input_tokens(15)
                    .build()
                    .unwrap(),
            )
            .cache_details(
                CacheDetail::builder()
                    .ttl(CacheTtl::FiveMinutes)
                    .input_tokens(10)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let a = usage(Some(&u));
        assert_eq!((a.input_tokens, a.output_tokens), (10, 20));
        assert_eq!(
            (a.cache_read_input_tokens, a.cache_creation_input_tokens),
            (Some(5), Some(25))
        );
        assert_eq!(
            a.cache_creation,
            Some(CacheCreation {
                ephemeral_5m_input_tokens: 10,
                ephemeral_1h_input_tokens: 15
            })
        );
    }

    #[test]
    fn citations_become_text_citations() {
        let block = bedrock::ContentBlock::CitationsContent(
            CitationsContentBlock::builder()
                .content(CitationGeneratedContent::Text("Revenue grew.".into()))
                .citations(
                    Citation::builder()
                        .title("Q3")
                        .source_content(CitationSourceContent::Text("grew 12%".into()))
                        .location(CitationLocation::DocumentPage(
                            DocumentPageLocation::builder()
                                .document_index(0)
                                .start(2)
                                .end(3)
                                .build(),
                        ))
                        .build(),
                )
                .citations(
                    Citation::builder()
                        .location(CitationLocation::DocumentChar(
                            DocumentCharLocation::builder()
                                .document_index(1)
                                .start(5)
                                .end(9)
                                .build(),
                        ))
                        .build(),
                )
                .build(),
        );
        let Some(ContentBlock::Text(t)) = content_block(&block) else {
            panic!()
        };
        assert_eq!(t.text, "Revenue grew.");
        let c = t.citations.unwrap();
        assert_eq!(
            c[0],
            json!({"type": "page_location", "cited_text": "grew 12%", "document_index": 0, "document_title": "Q3", "start_page_number": 2, "end_page_number": 3})
        );
        assert_eq!(c[1]["type"], "char_location");
        assert_eq!(
            (
                c[1]["start_char_index"].as_i64(),
                c[1]["end_char_index"].as_i64()
            ),
            (Some(5), Some(9))
        );
    }

    #[test]
    fn stop_sequence_comes_from_additional_fields() {
        let doc = crate::to_document(&json!({"stop_sequence": "END"}));
        assert_eq!(stop_sequence(Some(&doc)).as_deref(), Some("END"));
        assert_eq!(
            stop_sequence(Some(&crate::to_document(&json!({"stop_sequence": null})))),
            None
        );
        assert_eq!(stop_sequence(None), None);
    }
}
