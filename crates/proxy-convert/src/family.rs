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
/// means every Claude model. Betas Bedrock does not know make it answer "invalid beta flag" (or
/// "Unexpected value(s) ... for the anthropic-beta header"), so every beta not listed here is dropped.
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

/// Prefixes of betas only Anthropic's own API serves: features that live on Anthropic's side
/// (OAuth, the Files API, code execution, web fetch, Skills, the MCP connector, the advisor tool,
/// cache scopes) or that only mark the client (`claude-code-*`). Claude Code sends several on every
/// request. They are dropped for every model, whatever `BEDROCK_BETAS` says, so that adding a
/// beta there cannot let one of these through. Whether Bedrock refuses each of them on every
/// endpoint is not confirmed for all (some were seen accepted by the runtime Messages API, others
/// refused); dropping them is the safe side, since none changes what a Bedrock model can do.
pub(crate) const FIRST_PARTY_BETAS: &[&str] = &[
    "claude-code-",
    "oauth-",
    "prompt-caching-scope-",
    "files-api-",
    "mcp-client-",
    "code-execution-",
    "web-fetch-",
    "skills-",
    "advisor-tool-",
    "fallback-credit-",
];

/// Whether `beta` is one of the [`FIRST_PARTY_BETAS`].
pub(crate) fn is_first_party_beta(beta: &str) -> bool {
    FIRST_PARTY_BETAS.iter().any(|p| beta.starts_with(p))
}

/// Betas split into those Bedrock accepts for a model and those dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct BetaSplit {
    /// Accepted, in the order given, without duplicates.
    pub kept: Vec<String>,
    /// Dropped, in the order given, without duplicates.
    pub dropped: Vec<String>,
}

impl BetaSplit {
    /// Adds betas (already trimmed, non-empty) to the split for `bedrock_id`.
    pub(crate) fn extend<'a>(
        &mut self,
        betas: impl IntoIterator<Item = &'a str>,
        bedrock_id: &str,
    ) {
        let claude = ModelFamily::of(bedrock_id) == ModelFamily::Claude;
        for beta in betas {
            let allowed = claude
                && !is_first_party_beta(beta)
                && BEDROCK_BETAS.iter().any(|(name, models)| {
                    *name == beta
                        && (models.is_empty() || models.iter().any(|m| bedrock_id.contains(m)))
                });
            let list = if allowed {
                &mut self.kept
            } else {
                &mut self.dropped
            };
            if !list.iter().any(|b| b == beta) {
                list.push(beta.to_owned());
            }
        }
    }

    /// The betas of an `anthropic-beta` header (comma-separated) split for `bedrock_id`.
    pub(crate) fn of_header(header: Option<&str>, bedrock_id: &str) -> Self {
        let mut split = BetaSplit::default();
        split.extend(header_betas(header), bedrock_id);
        split
    }
}

/// Whether `betas` holds a beta of `family` (its name up to the date, e.g. `context-management-`).
pub(crate) fn has_beta(betas: &[String], family: &str) -> bool {
    betas.iter().any(|b| b.starts_with(family))
}

/// The names in an `anthropic-beta` header: comma-separated, trimmed, empty ones skipped.
pub(crate) fn header_betas(header: Option<&str>) -> impl Iterator<Item = &str> {
    header
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|b| !b.is_empty())
}

/// The betas of an `anthropic-beta` header (comma-separated) that Bedrock accepts for `bedrock_id`,
/// in the order given, without duplicates: those on the allow list for that model, never a
/// first-party-only one (`claude-code-*`, `oauth-*`, `prompt-caching-scope-*`, `files-api-*`, ...).
/// Non-Claude models get none.
pub fn bedrock_betas(header: Option<&str>, bedrock_id: &str) -> Vec<String> {
    let split = BetaSplit::of_header(header, bedrock_id);
    for beta in &split.dropped {
        tracing::debug!(
            beta,
            bedrock_id,
            "dropping a beta Bedrock does not accept for this model"
        );
    }
    split.kept
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

    #[test]
    fn first_party_betas_never_pass() {
        let first_party = [
            "claude-code-20250219",
            "oauth-2025-04-20",
            "prompt-caching-scope-2026-01-05",
            "files-api-2025-04-14",
            "mcp-client-2025-11-20",
            "code-execution-2025-08-25",
            "web-fetch-2025-09-10",
            "skills-2025-10-02",
            "advisor-tool-2026-03-01",
        ];
        for beta in first_party {
            assert!(is_first_party_beta(beta), "{beta}");
            let split = BetaSplit::of_header(
                Some(&format!("{beta},interleaved-thinking-2025-05-14")),
                "global.anthropic.claude-opus-4-8",
            );
            assert_eq!(split.kept, ["interleaved-thinking-2025-05-14"], "{beta}");
            assert_eq!(split.dropped, [beta]);
        }
        assert!(!is_first_party_beta("interleaved-thinking-2025-05-14"));
        // The deny list wins over the allow list, and the two never overlap.
        for (allowed, _) in BEDROCK_BETAS {
            assert!(!is_first_party_beta(allowed), "{allowed}");
        }
    }

    #[test]
    fn a_split_reports_what_it_dropped_once() {
        let mut split = BetaSplit::of_header(
            Some("oauth-2025-04-20, effort-2025-11-24 ,oauth-2025-04-20,,"),
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        );
        split.extend(
            ["effort-2025-11-24", "context-management-2025-06-27"],
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        );
        assert_eq!(split.kept, ["context-management-2025-06-27"]);
        assert_eq!(split.dropped, ["oauth-2025-04-20", "effort-2025-11-24"]);
        let qwen = BetaSplit::of_header(
            Some("interleaved-thinking-2025-05-14"),
            "qwen.qwen3-32b-v1:0",
        );
        assert!(qwen.kept.is_empty());
        assert_eq!(qwen.dropped, ["interleaved-thinking-2025-05-14"]);
    }
}
