//! The models the emulator knows, how a `modelId` from a request resolves to one of them, and the
//! control-plane listings (ListFoundationModels, ListInferenceProfiles) built from them.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One foundation model.
///
/// In the config file (`[[model]]`) and in `POST /_sim/models` a model is written as a
/// [`ModelSpec`]: `id`, `name`, and optionally `provider`, `on_demand` or `inference_types`,
/// `geos`, `input_modalities`, `mantle` / `mantle_id` and `adaptive_thinking`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(try_from = "ModelSpec")]
pub struct Model {
    /// The bare foundation-model id, e.g. `anthropic.claude-sonnet-4-5-20250929-v1:0`.
    pub id: String,
    /// Display name, e.g. `Claude Sonnet 4.5`.
    pub name: String,
    /// Provider name as ListFoundationModels shows it, e.g. `Anthropic`.
    pub provider: String,
    /// Whether the bare id can be invoked (on-demand throughput); otherwise only through a profile.
    pub on_demand: bool,
    /// Geographies with a system-defined cross-region inference profile (`us`, `eu`, `global`, ...).
    pub geos: Vec<String>,
    /// Input modalities (`TEXT`, `IMAGE`, ...).
    pub input_modalities: Vec<String>,
    /// The id bedrock-mantle serves this model under (a bare id without version suffix, e.g.
    /// `anthropic.claude-haiku-4-5`); `None` if Mantle does not serve it.
    pub mantle_id: Option<String>,
    /// Whether the model takes only adaptive thinking (Claude Opus 4.7 and later): a request with
    /// `thinking.type: "enabled"` is refused.
    pub adaptive_thinking: bool,
}

/// How a model is written in the config file and in `POST /_sim/models`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// The bare foundation-model id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Provider name; defaults to `Anthropic` for `anthropic.` ids and is required otherwise.
    #[serde(default)]
    pub provider: Option<String>,
    /// Whether the bare id can be invoked; the same as listing `ON_DEMAND` in `inference_types`.
    #[serde(default)]
    pub on_demand: Option<bool>,
    /// `inferenceTypesSupported` as ListFoundationModels shows it: `ON_DEMAND` and/or
    /// `INFERENCE_PROFILE`.
    #[serde(default)]
    pub inference_types: Option<Vec<String>>,
    /// Geographies with a system inference profile (`us`, `eu`, `apac`, `au`, `jp`, `in`,
    /// `global`, `us-gov`).
    #[serde(default)]
    pub geos: Vec<String>,
    /// Input modalities (default `["TEXT"]`).
    #[serde(default = "text_only")]
    pub input_modalities: Vec<String>,
    /// Served by bedrock-mantle under its own `id`.
    #[serde(default)]
    pub mantle: bool,
    /// Served by bedrock-mantle under this id (implies `mantle`).
    #[serde(default)]
    pub mantle_id: Option<String>,
    /// Takes only adaptive thinking (refuses `thinking.type: "enabled"`).
    #[serde(default)]
    pub adaptive_thinking: bool,
}

/// Geographies that have system inference profiles, as Bedrock prefixes profile ids.
pub const GEOGRAPHIES: &[&str] = &["us", "eu", "apac", "au", "jp", "in", "global", "us-gov"];

impl TryFrom<ModelSpec> for Model {
    type Error = String;

    fn try_from(spec: ModelSpec) -> Result<Model, String> {
        if spec.id.trim().is_empty() || spec.id.contains('/') || spec.id.starts_with("arn:") {
            return Err(format!("model id `{}` is not a bare model id", spec.id));
        }
        if spec.name.trim().is_empty() {
            return Err(format!("model {}: name must not be empty", spec.id));
        }
        let provider = match spec.provider {
            Some(p) if !p.trim().is_empty() => p,
            _ if spec.id.starts_with("anthropic.") => "Anthropic".to_owned(),
            _ => return Err(format!("model {}: provider is required", spec.id)),
        };
        let listed_on_demand = match &spec.inference_types {
            None => None,
            Some(types) => {
                if let Some(bad) = types.iter().find(|t| {
                    !["ON_DEMAND", "INFERENCE_PROFILE", "PROVISIONED"].contains(&t.as_str())
                }) {
                    return Err(format!(
                        "model {}: unknown inference type `{bad}` (ON_DEMAND, INFERENCE_PROFILE, PROVISIONED)",
                        spec.id
                    ));
                }
                Some(types.iter().any(|t| t == "ON_DEMAND"))
            }
        };
        let on_demand = match (spec.on_demand, listed_on_demand) {
            (Some(a), Some(b)) if a != b => {
                return Err(format!(
                    "model {}: on_demand and inference_types disagree",
                    spec.id
                ));
            }
            (Some(a), _) | (None, Some(a)) => a,
            (None, None) => false,
        };
        if let Some(bad) = spec
            .geos
            .iter()
            .find(|g| !GEOGRAPHIES.contains(&g.as_str()))
        {
            return Err(format!(
                "model {}: unknown geography `{bad}` ({})",
                spec.id,
                GEOGRAPHIES.join(", ")
            ));
        }
        let mantle_id = match spec.mantle_id {
            Some(m) if m.contains(':') || m.contains('/') => {
                return Err(format!(
                    "model {}: mantle_id `{m}` must be a bare id without version suffix",
                    spec.id
                ));
            }
            Some(m) => Some(m),
            None => spec.mantle.then(|| spec.id.clone()),
        };
        Ok(Model {
            id: spec.id,
            name: spec.name,
            provider,
            on_demand,
            geos: spec.geos,
            input_modalities: spec.input_modalities,
            mantle_id,
            adaptive_thinking: spec.adaptive_thinking,
        })
    }
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
        mantle_id: None,
        adaptive_thinking: false,
    }
}

/// A Claude model of the generation Bedrock serves only through inference profiles: no ARN version
/// suffix, the same id on Mantle, and (from Opus 4.7 on) adaptive thinking only.
fn profile_only_claude(id: &str, name: &str, geos: &[&str]) -> Model {
    Model {
        mantle_id: Some(id.to_owned()),
        adaptive_thinking: true,
        ..model(id, name, "Anthropic", false, geos, true)
    }
}

/// The built-in catalog: the current Claude models and a few Converse-only families.
///
/// The newest Claude models (Opus 4.7 and later, Sonnet 5, Fable 5) have no ARN-versioned id and are
/// listed with `inferenceTypesSupported: ["INFERENCE_PROFILE"]` only, with the system profiles of the
/// geographies Bedrock publishes for them. Where no geography was published for a model (Opus 5.5,
/// Fable 5, Fable 5.1) the catalog assumes the Global profile only: an assumption, not a fact.
pub fn builtin_models() -> Vec<Model> {
    let all = &["us", "eu", "apac", "jp", "global"];
    let mut haiku_4_5 = model(
        "anthropic.claude-haiku-4-5-20251001-v1:0",
        "Claude Haiku 4.5",
        "Anthropic",
        false,
        all,
        true,
    );
    haiku_4_5.mantle_id = Some("anthropic.claude-haiku-4-5".into());
    vec![
        profile_only_claude("anthropic.claude-opus-5-5", "Claude Opus 5.5", &["global"]),
        profile_only_claude(
            "anthropic.claude-opus-5",
            "Claude Opus 5",
            &["us", "global"],
        ),
        profile_only_claude(
            "anthropic.claude-sonnet-5",
            "Claude Sonnet 5",
            &["us", "eu", "au", "global"],
        ),
        profile_only_claude(
            "anthropic.claude-fable-5-1",
            "Claude Fable 5.1",
            &["global"],
        ),
        profile_only_claude("anthropic.claude-fable-5", "Claude Fable 5", &["global"]),
        profile_only_claude(
            "anthropic.claude-opus-4-8",
            "Claude Opus 4.8",
            &["us", "eu", "global"],
        ),
        profile_only_claude(
            "anthropic.claude-opus-4-7",
            "Claude Opus 4.7",
            &["us", "eu", "jp", "au", "global"],
        ),
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
        haiku_4_5,
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
        let mut catalog = Catalog {
            models: builtin_models(),
            region: region.to_owned(),
            account: "123456789012".to_owned(),
        };
        for m in extra {
            catalog.add(m);
        }
        catalog
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

    /// Adds `model` (replacing a model of the same id), as the config file's `[[model]]` and
    /// `POST /_sim/models` do.
    pub fn add(&mut self, model: Model) {
        match self.models.iter_mut().find(|m| m.id == model.id) {
            Some(known) => *known = model,
            None => self.models.push(model),
        }
    }

    /// The model bedrock-mantle serves under `id`: Mantle takes only bare ids without version
    /// suffix; profile ids and ARNs name no Mantle model.
    pub fn resolve_mantle(&self, id: &str) -> Option<&Model> {
        self.models
            .iter()
            .find(|m| m.mantle_id.as_deref() == Some(id))
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
                get("byInferenceType").is_none_or(|t| {
                    (t == "ON_DEMAND" && m.on_demand)
                        || t == "PROVISIONED"
                        || t == "INFERENCE_PROFILE"
                })
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
                    "au" => &["ap-southeast-2", "ap-southeast-4"],
                    "in" => &["ap-south-1", "ap-south-2"],
                    "us-gov" => &["us-gov-west-1", "us-gov-east-1"],
                    _ => &["us-east-1", "eu-west-1", "ap-northeast-1"],
                };
                let models: Vec<Value> = regions
                    .iter()
                    .map(|r| json!({ "modelArn": format!("arn:aws:bedrock:{r}::foundation-model/{}", m.id) }))
                    .collect();
                let label = match geo.as_str() {
                    "global" => "Global".to_owned(),
                    "apac" => "APAC".to_owned(),
                    "us-gov" => "US GovCloud".to_owned(),
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
    fn newest_models_are_profile_only_and_on_mantle_by_bare_id() {
        let c = catalog();
        assert_eq!(
            c.resolve("anthropic.claude-opus-4-8").unwrap_err(),
            ResolveError::OnDemandNotSupported("anthropic.claude-opus-4-8".into())
        );
        for id in [
            "us.anthropic.claude-opus-4-8",
            "eu.anthropic.claude-opus-4-8",
            "global.anthropic.claude-opus-4-8",
            "jp.anthropic.claude-opus-4-7",
            "au.anthropic.claude-opus-4-7",
            "au.anthropic.claude-sonnet-5",
            "us.anthropic.claude-opus-5",
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/global.anthropic.claude-opus-5-5",
        ] {
            assert!(c.resolve(id).unwrap().via_profile, "{id}");
        }
        for id in [
            "apac.anthropic.claude-opus-4-7",
            "eu.anthropic.claude-opus-5",
            "us.anthropic.claude-opus-4-7-v1",
        ] {
            assert_eq!(c.resolve(id).unwrap_err(), ResolveError::Invalid, "{id}");
        }
        let m = c.resolve("us.anthropic.claude-opus-4-8").unwrap().model;
        assert_eq!(m.name, "Claude Opus 4.8");
        assert_eq!(m.anthropic_name(), "claude-opus-4-8");
        assert!(m.adaptive_thinking);
        let summary = c.model_summary(m);
        assert_eq!(
            summary["inferenceTypesSupported"],
            json!(["INFERENCE_PROFILE"])
        );
        assert_eq!(
            c.resolve_mantle("anthropic.claude-opus-4-8").unwrap().id,
            "anthropic.claude-opus-4-8"
        );
        assert_eq!(
            c.resolve_mantle("anthropic.claude-haiku-4-5").unwrap().id,
            "anthropic.claude-haiku-4-5-20251001-v1:0"
        );
        assert!(
            !c.resolve_mantle("anthropic.claude-haiku-4-5")
                .unwrap()
                .adaptive_thinking
        );
        assert!(c.resolve_mantle("us.anthropic.claude-opus-4-8").is_none());
        assert!(
            c.resolve_mantle("anthropic.claude-sonnet-4-5-20250929-v1:0")
                .is_none()
        );
        let profiles: Vec<String> = c
            .profiles()
            .iter()
            .filter_map(|p| p["inferenceProfileId"].as_str().map(str::to_owned))
            .filter(|p| p.ends_with(".anthropic.claude-opus-4-7"))
            .collect();
        assert_eq!(
            profiles,
            ["us", "eu", "jp", "au", "global"].map(|g| format!("{g}.anthropic.claude-opus-4-7"))
        );
    }

    #[test]
    fn models_from_specs() {
        let spec = |v: Value| serde_json::from_value::<Model>(v);
        let m = spec(
            json!({"id": "anthropic.claude-opus-6", "name": "Claude Opus 6",
            "inference_types": ["INFERENCE_PROFILE"], "geos": ["us", "global"], "mantle": true,
            "adaptive_thinking": true}),
        )
        .unwrap();
        assert_eq!(m.provider, "Anthropic");
        assert!(!m.on_demand);
        assert_eq!(m.mantle_id.as_deref(), Some("anthropic.claude-opus-6"));
        let mut c = catalog();
        c.add(m.clone());
        assert!(c.resolve("global.anthropic.claude-opus-6").is_ok());
        assert!(c.resolve_mantle("anthropic.claude-opus-6").is_some());
        // A model round-trips through its own JSON.
        let again: Model = serde_json::from_value(serde_json::to_value(&m).unwrap()).unwrap();
        assert_eq!(again.geos, m.geos);
        assert_eq!(again.mantle_id, m.mantle_id);
        assert!(
            spec(json!({"id": "acme.x", "name": "X"}))
                .unwrap_err()
                .to_string()
                .contains("provider")
        );
        assert!(
            spec(json!({"id": "acme.x", "name": "X", "provider": "Acme", "geos": ["mars"]}))
                .is_err()
        );
        assert!(spec(json!({"id": "acme.x", "name": "X", "provider": "Acme", "on_demand": false, "inference_types": ["ON_DEMAND"]})).is_err());
        assert!(spec(json!({"id": "acme.x", "name": "X", "provider": "Acme", "inference_types": ["SOMETIMES"]})).is_err());
        assert!(
            spec(json!({"id": "acme.x", "name": "X", "provider": "Acme", "colour": "red"}))
                .is_err()
        );
        let on_demand = spec(json!({"id": "acme.x", "name": "X", "provider": "Acme", "inference_types": ["ON_DEMAND"]})).unwrap();
        assert!(on_demand.on_demand);
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
