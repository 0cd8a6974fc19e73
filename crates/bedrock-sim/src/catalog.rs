//! The models the emulator knows, how a `modelId` from a request resolves to one of them, and the
//! control-plane listings (ListFoundationModels, ListInferenceProfiles) built from them.

use serde::Deserialize;
use serde_json::{Value, json};

/// One foundation model.
#[derive(Debug, Clone, Deserialize)]
pub struct Model {
    /// The bare foundation-model id, e.g. `anthropic.claude-sonnet-4-5-20250929-v1:0`.
    pub id: String,
    /// Display name, e.g. `Claude Sonnet 4.5`.
    pub name: String,
    /// Provider name as ListFoundationModels shows it, e.g. `Anthropic`.
    pub provider: String,
    /// Whether the bare id can be invoked (on-demand throughput); otherwise only through a profile.
    #[serde(default)]
    pub on_demand: bool,
    /// Geographies with a system-defined cross-region inference profile (`us`, `eu`, `global`, ...).
    #[serde(default)]
    pub geos: Vec<String>,
    /// Input modalities (`TEXT`, `IMAGE`, ...).
    #[serde(default = "text_only")]
    pub input_modalities: Vec<String>,
}

fn text_only() -> Vec<String> {
    vec!["TEXT".into()]
}

impl Model {
    /// Whether this is an Anthropic Claude model (native body, signatures, CountTokens).
    pub fn is_claude(&self) -> bool {
        self.id.starts_with("anthropic.")
    }

    /// The name Anthropic uses for it, e.g. `claude-sonnet-4-5-20250929`: what the native
    /// InvokeModel response carries in `model`.
    pub fn anthropic_name(&self) -> String {
        let bare = self.id.trim_start_matches("anthropic.");
        let bare = bare.split(':').next().unwrap_or(bare);
        bare.strip_suffix("-v1")
            .or_else(|| bare.strip_suffix("-v2"))
            .unwrap_or(bare)
            .to_owned()
    }
}

fn model(
    id: &str,
    name: &str,
    provider: &str,
    on_demand: bool,
    geos: &[&str],
    image: bool,
) -> Model {
    Model {
        id: id.into(),
        name: name.into(),
        provider: provider.into(),
        on_demand,
        geos: geos.iter().map(|g| (*g).to_owned()).collect(),
        input_modalities: if image {
            vec!["TEXT".into(), "IMAGE".into()]
        } else {
            text_only()
        },
    }
}

/// The built-in catalog: the current Claude models and a few Converse-only families.
pub fn builtin_models() -> Vec<Model> {
    let all = &["us", "eu", "apac", "jp", "global"];
    vec![
        model(
            "anthropic.claude-opus-4-6-v1",
            "Claude Opus 4.6",
            "Anthropic",
            false,
            &["us", "eu", "global"],
            true,
        ),
        model(
            "anthropic.claude-sonnet-4-6",
            "Claude Sonnet 4.6",
            "Anthropic",
            false,
            all,
            true,
        ),
        model(
            "anthropic.claude-opus-4-5-20251101-v1:0",
            "Claude Opus 4.5",
            "Anthropic",
            false,
            &["us", "eu", "global"],
            true,
        ),
        model(
            "anthropic.claude-haiku-4-5-20251001-v1:0",
            "Claude Haiku 4.5",
            "Anthropic",
            false,
            all,
            true,
        ),
        model(
            "anthropic.claude-sonnet-4-5-20250929-v1:0",
            "Claude Sonnet 4.5",
            "Anthropic",
            false,
            all,
            true,
        ),
        model(
            "anthropic.claude-opus-4-1-20250805-v1:0",
            "Claude Opus 4.1",
            "Anthropic",
            false,
            &["us"],
            true,
        ),
        model(
            "anthropic.claude-sonnet-4-20250514-v1:0",
            "Claude Sonnet 4",
            "Anthropic",
            false,
            &["us", "eu", "apac", "global"],
            true,
        ),
        model(
            "anthropic.claude-3-7-sonnet-20250219-v1:0",
            "Claude 3.7 Sonnet",
            "Anthropic",
            false,
            &["us", "eu", "apac"],
            true,
        ),
        model(
            "anthropic.claude-3-5-haiku-20241022-v1:0",
            "Claude 3.5 Haiku",
            "Anthropic",
            true,
            &["us"],
            false,
        ),
        model(
            "anthropic.claude-3-haiku-20240307-v1:0",
            "Claude 3 Haiku",
            "Anthropic",
            true,
            &["us", "eu", "apac"],
            true,
        ),
        model(
            "qwen.qwen3-coder-480b-a35b-v1:0",
            "Qwen3 Coder 480B A35B Instruct",
            "Qwen",
            true,
            &[],
            false,
        ),
        model(
            "qwen.qwen3-coder-30b-a3b-v1:0",
            "Qwen3 Coder 30B A3B Instruct",
            "Qwen",
            true,
            &[],
            false,
        ),
        model(
            "qwen.qwen3-235b-a22b-2507-v1:0",
            "Qwen3 235B A22B 2507",
            "Qwen",
            true,
            &[],
            false,
        ),
        model(
            "qwen.qwen3-32b-v1:0",
            "Qwen3 32B (dense)",
            "Qwen",
            true,
            &[],
            false,
        ),
        model(
            "deepseek.r1-v1:0",
            "DeepSeek-R1",
            "DeepSeek",
            false,
            &["us"],
            false,
        ),
        model(
            "deepseek.v3-v1:0",
            "DeepSeek-V3.1",
            "DeepSeek",
            true,
            &[],
            false,
        ),
        model(
            "openai.gpt-oss-120b-1:0",
            "gpt-oss-120b",
            "OpenAI",
            true,
            &[],
            false,
        ),
        model(
            "openai.gpt-oss-20b-1:0",
            "gpt-oss-20b",
            "OpenAI",
            true,
            &[],
            false,
        ),
        model(
            "amazon.nova-pro-v1:0",
            "Nova Pro",
            "Amazon",
            true,
            &["us", "eu", "apac"],
            true,
        ),
        model(
            "amazon.nova-lite-v1:0",
            "Nova Lite",
            "Amazon",
            true,
            &["us", "eu", "apac"],
            true,
        ),
        model(
            "amazon.nova-micro-v1:0",
            "Nova Micro",
            "Amazon",
            true,
            &["us", "eu", "apac"],
            false,
        ),
        model(
            "meta.llama3-3-70b-instruct-v1:0",
            "Llama 3.3 70B Instruct",
            "Meta",
            false,
            &["us"],
            false,
        ),
        model(
            "mistral.mistral-large-2407-v1:0",
            "Mistral Large (24.07)",
            "Mistral AI",
            true,
            &[],
            false,
        ),
    ]
}

/// How a request's `modelId` resolved.
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'a> {
    /// The foundation model.
    pub model: &'a Model,
    /// Whether it was named through an inference profile (id or ARN).
    pub via_profile: bool,
}

/// Why a `modelId` does not resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    /// Not an id Bedrock knows (Bedrock says "The provided model identifier is invalid.").
    Invalid,
    /// A known model that needs an inference profile.
    OnDemandNotSupported(String),
}

/// The known models, in catalog order.
#[derive(Debug, Clone)]
pub struct Catalog {
    models: Vec<Model>,
    region: String,
    account: String,
}

impl Catalog {
    /// A catalog of the built-in models plus `extra`, with ARNs in `region`.
    pub fn new(extra: Vec<Model>, region: &str) -> Self {
        let mut models = builtin_models();
        for m in extra {
            models.retain(|known| known.id != m.id);
            models.push(m);
        }
        Catalog {
            models,
            region: region.to_owned(),
            account: "123456789012".to_owned(),
        }
    }

    /// All models.
    pub fn models(&self) -> &[Model] {
        &self.models
    }

    /// Resolves a decoded `modelId` (bare id, profile id, or either's ARN).
    pub fn resolve(&self, model_id: &str) -> Result<Resolved<'_>, ResolveError> {
        let (id, arn_kind) = match model_id.strip_prefix("arn:") {
            Some(arn) => {
                // arn:aws:bedrock:{region}:{account}:{kind}/{id}
                let parts: Vec<&str> = arn.splitn(5, ':').collect();
                if parts.len() != 5 || parts[1] != "bedrock" {
                    return Err(ResolveError::Invalid);
                }
                let (kind, id) = parts[4].split_once('/').ok_or(ResolveError::Invalid)?;
                (id, Some(kind))
            }
            None => (model_id, None),
        };
        if let Some(m) = self.models.iter().find(|m| m.id == id) {
            if arn_kind.is_some_and(|k| k != "foundation-model") {
                return Err(ResolveError::Invalid);
            }
            if !m.on_demand {
                return Err(ResolveError::OnDemandNotSupported(m.id.clone()));
            }
            return Ok(Resolved {
                model: m,
                via_profile: false,
            });
        }
        if arn_kind.is_some_and(|k| k != "inference-profile") {
            return Err(ResolveError::Invalid);
        }
        let (geo, base) = id.split_once('.').ok_or(ResolveError::Invalid)?;
        self.models
            .iter()
            .find(|m| m.id == base && m.geos.iter().any(|g| g == geo))
            .map(|m| Resolved {
                model: m,
                via_profile: true,
            })
            .ok_or(ResolveError::Invalid)
    }

    fn model_arn(&self, id: &str) -> String {
        format!("arn:aws:bedrock:{}::foundation-model/{id}", self.region)
    }

    /// The summary of one model, as in ListFoundationModels.
    pub fn model_summary(&self, m: &Model) -> Value {
        json!({
            "modelArn": self.model_arn(&m.id),
            "modelId": m.id,
            "modelName": m.name,
            "providerName": m.provider,
            "inputModalities": m.input_modalities,
            "outputModalities": ["TEXT"],
            "responseStreamingSupported": true,
            "customizationsSupported": [],
            "inferenceTypesSupported": if m.on_demand {
                json!(["ON_DEMAND", "INFERENCE_PROFILE"])
            } else {
                json!(["INFERENCE_PROFILE"])
            },
            "modelLifecycle": {"status": "ACTIVE"}
        })
    }

    /// ListFoundationModels, with its filters (`byProvider`, `byOutputModality`, `byInferenceType`,
    /// `byCustomizationType`).
    pub fn list_foundation_models(&self, query: &[(String, String)]) -> Value {
        let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let summaries: Vec<Value> = self
            .models
            .iter()
            .filter(|m| get("byProvider").is_none_or(|p| m.provider.eq_ignore_ascii_case(p)))
            .filter(|_| get("byOutputModality").is_none_or(|o| o == "TEXT"))
            .filter(|m| {
                get("byInferenceType")
                    .is_none_or(|t| (t == "ON_DEMAND" && m.on_demand) || t == "PROVISIONED")
            })
            .filter(|_| get("byCustomizationType").is_none())
            .map(|m| self.model_summary(m))
            .collect();
        json!({ "modelSummaries": summaries })
    }

    /// GetFoundationModel.
    pub fn get_foundation_model(&self, id: &str) -> Option<Value> {
        let id = id.rsplit('/').next().unwrap_or(id);
        self.models
            .iter()
            .find(|m| m.id == id)
            .map(|m| json!({ "modelDetails": self.model_summary(m) }))
    }

    /// Every system-defined inference profile, in catalog order.
    pub fn profiles(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for m in &self.models {
            for geo in &m.geos {
                let pid = format!("{geo}.{}", m.id);
                let regions: &[&str] = match geo.as_str() {
                    "us" => &["us-east-1", "us-east-2", "us-west-2"],
                    "eu" => &["eu-central-1", "eu-west-1", "eu-west-3"],
                    "apac" => &["ap-northeast-1", "ap-southeast-1", "ap-southeast-2"],
                    "jp" => &["ap-northeast-1", "ap-northeast-3"],
                    _ => &["us-east-1", "eu-west-1", "ap-northeast-1"],
                };
                let models: Vec<Value> = regions
                    .iter()
                    .map(|r| json!({ "modelArn": format!("arn:aws:bedrock:{r}::foundation-model/{}", m.id) }))
                    .collect();
                let label = match geo.as_str() {
                    "global" => "Global".to_owned(),
                    "apac" => "APAC".to_owned(),
                    g => g.to_ascii_uppercase(),
                };
                out.push(json!({
                    "inferenceProfileName": format!("{label} {}", m.name),
                    "description": format!("Routes requests to {} in {label} regions.", m.name),
                    "createdAt": "2025-01-01T00:00:00Z",
                    "updatedAt": "2025-01-01T00:00:00Z",
                    "inferenceProfileArn": format!("arn:aws:bedrock:{}:{}:inference-profile/{pid}", self.region, self.account),
                    "models": models,
                    "inferenceProfileId": pid,
                    "status": "ACTIVE",
                    "type": "SYSTEM_DEFINED"
                }));
            }
        }
        out
    }

    /// ListInferenceProfiles, paged by `maxResults` (1-1000) and an opaque `nextToken`.
    pub fn list_inference_profiles(&self, query: &[(String, String)]) -> Result<Value, String> {
        let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let max = match get("maxResults") {
            None => 1000,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=1000).contains(&n) => n,
                _ => {
                    return Err(format!(
                        "1 validation error detected: Value '{v}' at 'maxResults' failed to satisfy constraint: Member must have value between 1 and 1000"
                    ));
                }
            },
        };
        let start = match get("nextToken") {
            None => 0,
            Some(t) => {
                decode_token(t).ok_or_else(|| "The provided nextToken is invalid.".to_owned())?
            }
        };
        let all: Vec<Value> = match get("type") {
            Some("APPLICATION") => Vec::new(),
            _ => self.profiles(),
        };
        let page: Vec<Value> = all.iter().skip(start).take(max).cloned().collect();
        let mut out = json!({ "inferenceProfileSummaries": page });
        if start + max < all.len() {
            out["nextToken"] = Value::String(encode_token(start + max));
        }
        Ok(out)
    }

    /// GetInferenceProfile (by id or ARN).
    pub fn get_inference_profile(&self, id: &str) -> Option<Value> {
        let id = id.rsplit('/').next().unwrap_or(id);
        self.profiles()
            .into_iter()
            .find(|p| p["inferenceProfileId"] == id)
    }
}

fn encode_token(offset: usize) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("bedrock-sim:{offset}"))
}

fn decode_token(token: &str) -> Option<usize> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("bedrock-sim:")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog::new(Vec::new(), "us-east-1")
    }

    #[test]
    fn resolves_ids_profiles_and_arns() {
        let c = catalog();
        let r = c
            .resolve("us.anthropic.claude-sonnet-4-5-20250929-v1:0")
            .unwrap();
        assert!(r.via_profile);
        assert_eq!(r.model.anthropic_name(), "claude-sonnet-4-5-20250929");
        assert!(
            c.resolve("global.anthropic.claude-haiku-4-5-20251001-v1:0")
                .is_ok()
        );
        assert!(c.resolve("qwen.qwen3-coder-480b-a35b-v1:0").is_ok());
        assert_eq!(
            c.resolve("anthropic.claude-sonnet-4-5-20250929-v1:0")
                .unwrap_err(),
            ResolveError::OnDemandNotSupported("anthropic.claude-sonnet-4-5-20250929-v1:0".into())
        );
        assert!(
            c.resolve(
                "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0"
            )
            .is_ok()
        );
        assert!(
            c.resolve("arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.anthropic.claude-sonnet-4-20250514-v1:0")
                .unwrap()
                .via_profile
        );
        assert_eq!(
            c.resolve("anthropic.claude-nope").unwrap_err(),
            ResolveError::Invalid
        );
        assert_eq!(
            c.resolve("xx.anthropic.claude-3-haiku-20240307-v1:0")
                .unwrap_err(),
            ResolveError::Invalid
        );
        assert_eq!(
            c.resolve("anthropic.claude-opus-4-6-v1").unwrap_err(),
            ResolveError::OnDemandNotSupported("anthropic.claude-opus-4-6-v1".into())
        );
        assert_eq!(
            c.resolve("us.anthropic.claude-opus-4-6-v1")
                .unwrap()
                .model
                .anthropic_name(),
            "claude-opus-4-6"
        );
    }

    #[test]
    fn pages_inference_profiles_without_gaps() {
        let c = catalog();
        let total = c.profiles().len();
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut q = vec![("maxResults".to_owned(), "7".to_owned())];
            if let Some(t) = &token {
                q.push(("nextToken".to_owned(), t.clone()));
            }
            let page = c.list_inference_profiles(&q).unwrap();
            for p in page["inferenceProfileSummaries"].as_array().unwrap() {
                seen.push(p["inferenceProfileId"].as_str().unwrap().to_owned());
            }
            match page.get("nextToken") {
                Some(t) => token = Some(t.as_str().unwrap().to_owned()),
                None => break,
            }
        }
        assert_eq!(seen.len(), total);
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), total);
        assert!(
            c.list_inference_profiles(&[("nextToken".into(), "garbage".into())])
                .is_err()
        );
        assert!(
            c.list_inference_profiles(&[("maxResults".into(), "0".into())])
                .is_err()
        );
    }

    #[test]
    fn filters_foundation_models_by_provider() {
        let c = catalog();
        let list = c.list_foundation_models(&[("byProvider".into(), "anthropic".into())]);
        let list = list["modelSummaries"].as_array().unwrap();
        assert!(!list.is_empty());
        assert!(
            list.iter()
                .all(|m| m["modelId"].as_str().unwrap().starts_with("anthropic."))
        );
    }
}
