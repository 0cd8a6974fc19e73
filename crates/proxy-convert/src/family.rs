//! Model families (what a Bedrock model id can take) and the `anthropic-beta` allow list.

/// The family of a Bedrock model, which decides which extra fields it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFamily {
    /// Anthropic Claude: native body, thinking with signatures, cache points, betas.
    Claude,
    /// Amazon Nova: cache points, `reasoningConfig`.
    Nova,
    /// OpenAI gpt-oss: `reasoning_effort`.
    GptOss,
    /// DeepSeek: reasoning always on for R1, no knobs.
    DeepSeek,
    /// Qwen3: no known reasoning switch on Bedrock.
    Qwen,
    /// Anything else.
    Other,
}

impl ModelFamily {
    /// The family of a Bedrock model id, inference profile id, or ARN of either.
    pub fn of(bedrock_id: &str) -> Self {
        let id = bedrock_id.rsplit('/').next().unwrap_or(bedrock_id);
        if id.contains("anthropic.claude") {
            ModelFamily::Claude
        } else if id.contains("amazon.nova") {
            ModelFamily::Nova
        } else if id.contains("openai.gpt-oss") {
            ModelFamily::GptOss
        } else if id.contains("deepseek.") {
            ModelFamily::DeepSeek
        } else if id.contains("qwen.") {
            ModelFamily::Qwen
        } else {
            ModelFamily::Other
        }
    }

    /// Whether Converse `cachePoint` blocks are accepted (prompt caching on Bedrock: Claude and Nova).
    pub fn supports_cache_points(self) -> bool {
        matches!(self, ModelFamily::Claude | ModelFamily::Nova)
    }
}

/// Betas Bedrock accepts for Claude, with the model ids (substrings) they apply to; an empty list
/// means every Claude model. Betas Bedrock does not know make it answer "invalid beta flag", so every
/// other beta a client sends (Claude Code sends `claude-code-20250219`, `oauth-2025-04-20`,
/// `prompt-caching-scope-...`, ...) is dropped.
const BEDROCK_BETAS: &[(&str, &[&str])] = &[
    ("interleaved-thinking-2025-05-14", &[]),
    (
        "context-1m-2025-08-07",
        &[
            "claude-sonnet-4-2025",
            "claude-sonnet-4-5",
            "claude-sonnet-4-6",
        ],
    ),
    ("context-management-2025-06-27", &[]),
    (
        "effort-2025-11-24",
        &["claude-opus-4-5", "claude-opus-4-6", "claude-sonnet-4-6"],
    ),
    ("tool-search-tool-2025-10-19", &[]),
    ("tool-examples-2025-10-29", &[]),
    ("fine-grained-tool-streaming-2025-05-14", &[]),
    ("token-efficient-tools-2025-02-19", &["claude-3-7-sonnet"]),
    ("output-128k-2025-02-19", &["claude-3-7-sonnet"]),
    ("computer-use-2024-10-22", &[]),
    ("computer-use-2025-01-24", &[]),
    ("computer-use-2025-11-24", &[]),
];

/// The betas of an `anthropic-beta` header (comma-separated) that Bedrock accepts for `bedrock_id`,
/// in the order given, without duplicates. Non-Claude models get none.
pub fn bedrock_betas(header: Option<&str>, bedrock_id: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if ModelFamily::of(bedrock_id) != ModelFamily::Claude {
        return out;
    }
    for beta in header
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|b| !b.is_empty())
    {
        let allowed = BEDROCK_BETAS.iter().any(|(name, models)| {
            *name == beta && (models.is_empty() || models.iter().any(|m| bedrock_id.contains(m)))
        });
        if allowed && !out.iter().any(|b| b == beta) {
            out.push(beta.to_owned());
        } else if !allowed {
            tracing::debug!(
                beta,
                bedrock_id,
                "dropping a beta Bedrock does not accept for this model"
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families() {
        assert_eq!(
            ModelFamily::of("us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
            ModelFamily::Claude
        );
        assert_eq!(
            ModelFamily::of(
                "arn:aws:bedrock:us-east-1:1:inference-profile/global.anthropic.claude-opus-4-6-v1"
            ),
            ModelFamily::Claude
        );
        assert_eq!(
            ModelFamily::of("qwen.qwen3-coder-480b-a35b-v1:0"),
            ModelFamily::Qwen
        );
        assert_eq!(
            ModelFamily::of("openai.gpt-oss-120b-1:0"),
            ModelFamily::GptOss
        );
        assert_eq!(
            ModelFamily::of("us.amazon.nova-pro-v1:0"),
            ModelFamily::Nova
        );
        assert_eq!(
            ModelFamily::of("mistral.mistral-large-2407-v1:0"),
            ModelFamily::Other
        );
    }

    #[test]
    fn filters_claude_code_betas() {
        let header = "claude-code-20250219,context-1m-2025-08-07,interleaved-thinking-2025-05-14,thinking-token-count-2026-05-13,context-management-2025-06-27,prompt-caching-scope-2026-01-05,mid-conversation-system-2026-04-07,effort-2025-11-24";
        assert_eq!(
            bedrock_betas(Some(header), "us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
            [
                "context-1m-2025-08-07",
                "interleaved-thinking-2025-05-14",
                "context-management-2025-06-27"
            ]
        );
        assert_eq!(
            bedrock_betas(Some(header), "global.anthropic.claude-opus-4-6-v1"),
            [
                "interleaved-thinking-2025-05-14",
                "context-management-2025-06-27",
                "effort-2025-11-24"
            ]
        );
        assert!(bedrock_betas(Some(header), "qwen.qwen3-32b-v1:0").is_empty());
        assert!(bedrock_betas(None, "us.anthropic.claude-sonnet-4-5-20250929-v1:0").is_empty());
        assert_eq!(
            bedrock_betas(
                Some(" a , interleaved-thinking-2025-05-14,interleaved-thinking-2025-05-14"),
                "anthropic.claude-3-7-sonnet-20250219-v1:0"
            ),
            ["interleaved-thinking-2025-05-14"]
        );
    }
}
