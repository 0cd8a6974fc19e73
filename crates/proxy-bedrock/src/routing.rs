//! Model routing: the name a client sends -> the Bedrock id and the route (native or Converse).

use serde::Deserialize;

/// How a model is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// InvokeModel with the native Claude body.
    Invoke,
    /// Converse / ConverseStream.
    Converse,
}

/// One `[[models]]` entry of the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRoute {
    /// What clients send.
    pub name: String,
    /// What Bedrock gets (model id, inference profile id, or ARN).
    pub bedrock_id: String,
    /// `invoke` (native Claude body) or `converse`.
    pub api: Api,
    /// Name shown by `GET /v1/models`.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// The routing part of the config file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// Explicit routes, checked before the built-in ones.
    #[serde(default)]
    pub models: Vec<ModelRoute>,
    /// Where unknown `claude-*` names go (a name that itself routes), e.g. Claude Code's newest
    /// defaults.
    #[serde(default)]
    pub fallback_model: Option<String>,
    /// Geography prefix of the built-in Claude inference profiles (`us`, `eu`, `apac`, `jp`,
    /// `global`); by default derived from the region.
    #[serde(default)]
    pub profile_prefix: Option<String>,
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The Bedrock model id.
    pub bedrock_id: String,
    /// The call style.
    pub api: Api,
}

impl Route {
    /// The bare foundation-model id (what CountTokens takes): the profile's geography prefix removed.
    pub fn foundation_model_id(&self) -> &str {
        let id = self
            .bedrock_id
            .rsplit('/')
            .next()
            .unwrap_or(&self.bedrock_id);
        match id.split_once('.') {
            Some((geo, rest)) if GEOS.contains(&geo) => rest,
            _ => id,
        }
    }
}

const GEOS: &[&str] = &["us", "eu", "apac", "jp", "global", "au", "ca", "us-gov"];

/// The current Claude models: (client names, foundation-model id, display name, release date).
const CLAUDE_MODELS: &[(&[&str], &str, &str, &str)] = &[
    (
        &["claude-opus-4-6"],
        "anthropic.claude-opus-4-6-v1",
        "Claude Opus 4.6",
        "2026-02-05",
    ),
    (
        &["claude-sonnet-4-6"],
        "anthropic.claude-sonnet-4-6",
        "Claude Sonnet 4.6",
        "2026-02-17",
    ),
    (
        &["claude-opus-4-5-20251101", "claude-opus-4-5"],
        "anthropic.claude-opus-4-5-20251101-v1:0",
        "Claude Opus 4.5",
        "2025-11-01",
    ),
    (
        &["claude-haiku-4-5-20251001", "claude-haiku-4-5"],
        "anthropic.claude-haiku-4-5-20251001-v1:0",
        "Claude Haiku 4.5",
        "2025-10-01",
    ),
    (
        &["claude-sonnet-4-5-20250929", "claude-sonnet-4-5"],
        "anthropic.claude-sonnet-4-5-20250929-v1:0",
        "Claude Sonnet 4.5",
        "2025-09-29",
    ),
    (
        &["claude-opus-4-1-20250805", "claude-opus-4-1"],
        "anthropic.claude-opus-4-1-20250805-v1:0",
        "Claude Opus 4.1",
        "2025-08-05",
    ),
    (
        &["claude-sonnet-4-20250514", "claude-sonnet-4-0"],
        "anthropic.claude-sonnet-4-20250514-v1:0",
        "Claude Sonnet 4",
        "2025-05-14",
    ),
    (
        &["claude-3-7-sonnet-20250219", "claude-3-7-sonnet-latest"],
        "anthropic.claude-3-7-sonnet-20250219-v1:0",
        "Claude Sonnet 3.7",
        "2025-02-19",
    ),
    (
        &["claude-3-5-haiku-20241022", "claude-3-5-haiku-latest"],
        "anthropic.claude-3-5-haiku-20241022-v1:0",
        "Claude Haiku 3.5",
        "2024-10-22",
    ),
    (
        &["claude-3-haiku-20240307"],
        "anthropic.claude-3-haiku-20240307-v1:0",
        "Claude Haiku 3",
        "2024-03-07",
    ),
];

/// Why a name does not route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// An unknown `claude-*` name and no fallback configured.
    #[error(
        "model `{0}` is not mapped to a Bedrock model: add a [[models]] entry (name, bedrock_id, api) to the config file, or set fallback_model"
    )]
    Unknown(String),
}

/// A model the gateway lists in `GET /v1/models`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedModel {
    /// The id clients send.
    pub id: String,
    /// A name for people.
    pub display_name: String,
    /// RFC 3339.
    pub created_at: String,
}

/// Resolves client model names.
#[derive(Debug, Clone)]
pub struct Router {
    config: RoutingConfig,
    prefix: String,
}

/// The inference-profile geography of a region.
pub fn geography(region: &str) -> &'static str {
    match region {
        r if r.starts_with("us-gov-") => "us-gov",
        r if r.starts_with("us-") || r.starts_with("ca-") => "us",
        r if r.starts_with("eu-") => "eu",
        "ap-northeast-1" | "ap-northeast-3" => "jp",
        r if r.starts_with("ap-") => "apac",
        _ => "us",
    }
}

impl Router {
    /// A router for `region` with the config file's routing part.
    pub fn new(config: RoutingConfig, region: &str) -> Self {
        let prefix = config
            .profile_prefix
            .clone()
            .unwrap_or_else(|| geography(region).to_owned());
        Router { config, prefix }
    }

    /// The route of a client model name. The response always carries the name the client sent.
    pub fn resolve(&self, name: &str) -> Result<Route, RouteError> {
        self.resolve_inner(name, true)
    }

    fn resolve_inner(&self, name: &str, allow_fallback: bool) -> Result<Route, RouteError> {
        if let Some(m) = self.config.models.iter().find(|m| m.name == name) {
            return Ok(Route {
                bedrock_id: m.bedrock_id.clone(),
                api: m.api,
            });
        }
        if let Some((_, id, _, _)) = CLAUDE_MODELS
            .iter()
            .find(|(names, ..)| names.contains(&name))
        {
            return Ok(Route {
                bedrock_id: format!("{}.{id}", self.prefix),
                api: Api::Invoke,
            });
        }
        if name.starts_with("claude-") {
            return match &self.config.fallback_model {
                Some(fallback) if allow_fallback => self.resolve_inner(fallback, false),
                _ => Err(RouteError::Unknown(name.to_owned())),
            };
        }
        // A Bedrock id: Claude ids take the native route, everything else Converse.
        let api = if name.contains("anthropic.claude") {
            Api::Invoke
        } else {
            Api::Converse
        };
        Ok(Route {
            bedrock_id: name.to_owned(),
            api,
        })
    }

    /// Why the configured fallback does not route, if it does not.
    pub fn fallback_error(&self) -> Option<String> {
        let fallback = self.config.fallback_model.as_ref()?;
        match self.resolve_inner(fallback, false) {
            Ok(_) => None,
            Err(e) => Some(e.to_string()),
        }
    }

    /// The models `GET /v1/models` lists: configured names first, then the built-in Claude names,
    /// newest first within each group.
    pub fn listed(&self) -> Vec<ListedModel> {
        let mut out: Vec<ListedModel> = self
            .config
            .models
            .iter()
            .map(|m| ListedModel {
                id: m.name.clone(),
                display_name: m.display_name.clone().unwrap_or_else(|| m.name.clone()),
                created_at: created_at(&m.name),
            })
            .collect();
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        let mut builtin: Vec<ListedModel> = CLAUDE_MODELS
            .iter()
            .flat_map(|(names, _, display, date)| {
                names.iter().map(move |name| ListedModel {
                    id: (*name).to_owned(),
                    display_name: (*display).to_owned(),
                    created_at: format!("{date}T00:00:00Z"),
                })
            })
            .filter(|m| !out.iter().any(|o| o.id == m.id))
            .collect();
        // Newest first; the sort is stable, so a dated name stays before its alias.
        builtin.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        out.extend(builtin);
        out
    }
}

/// A release time from a dated name (`...-20250929`), else the epoch.
fn created_at(name: &str) -> String {
    name.split(['-', ':', '.'])
        .find(|p| p.len() == 8 && p.starts_with("20") && p.chars().all(|c| c.is_ascii_digit()))
        .map(|d| format!("{}-{}-{}T00:00:00Z", &d[0..4], &d[4..6], &d[6..8]))
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_names() {
        let r = Router::new(RoutingConfig::default(), "us-east-1");
        assert_eq!(
            r.resolve("claude-sonnet-4-5-20250929").unwrap(),
            Route {
                bedrock_id: "us.anthropic.claude-sonnet-4-5-20250929-v1:0".into(),
                api: Api::Invoke
            }
        );
        assert_eq!(
            r.resolve("qwen.qwen3-coder-480b-a35b-v1:0").unwrap(),
            Route {
                bedrock_id: "qwen.qwen3-coder-480b-a35b-v1:0".into(),
                api: Api::Converse
            }
        );
        assert_eq!(
            r.resolve("eu.anthropic.claude-sonnet-4-20250514-v1:0")
                .unwrap()
                .api,
            Api::Invoke
        );
        assert!(matches!(
            r.resolve("claude-opus-4-8"),
            Err(RouteError::Unknown(_))
        ));
        let eu = Router::new(RoutingConfig::default(), "eu-west-1");
        assert_eq!(
            eu.resolve("claude-haiku-4-5").unwrap().bedrock_id,
            "eu.anthropic.claude-haiku-4-5-20251001-v1:0"
        );
        assert_eq!(geography("ap-northeast-1"), "jp");
        assert_eq!(geography("ap-southeast-2"), "apac");
    }

    #[test]
    fn config_routes_and_fallback() {
        let config: RoutingConfig = toml::from_str(
            r#"
            fallback_model = "claude-sonnet-4-5-20250929"
            profile_prefix = "global"
            [[models]]
            name = "coder"
            bedrock_id = "qwen.qwen3-coder-480b-a35b-v1:0"
            api = "converse"
            display_name = "Qwen3 Coder"
            "#,
        )
        .unwrap();
        let r = Router::new(config, "us-east-1");
        assert_eq!(r.resolve("coder").unwrap().api, Api::Converse);
        assert_eq!(
            r.resolve("claude-opus-4-8").unwrap().bedrock_id,
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0"
        );
        let listed = r.listed();
        assert_eq!(listed[0].id, "coder");
        assert_eq!(listed[0].created_at, "1970-01-01T00:00:00Z");
        assert!(listed.iter().any(
            |m| m.id == "claude-sonnet-4-5-20250929" && m.created_at == "2025-09-29T00:00:00Z"
        ));
        assert!(
            toml::from_str::<RoutingConfig>("[[models]]\nname='a'\nbedrock_id='b'\napi='fax'")
                .is_err()
        );
    }

    #[test]
    fn foundation_ids_for_count_tokens() {
        let route = |id: &str| Route {
            bedrock_id: id.into(),
            api: Api::Invoke,
        };
        assert_eq!(
            route("us.anthropic.claude-sonnet-4-5-20250929-v1:0").foundation_model_id(),
            "anthropic.claude-sonnet-4-5-20250929-v1:0"
        );
        assert_eq!(
            route("anthropic.claude-3-haiku-20240307-v1:0").foundation_model_id(),
            "anthropic.claude-3-haiku-20240307-v1:0"
        );
        assert_eq!(
            route(
                "arn:aws:bedrock:us-east-1:1:inference-profile/global.anthropic.claude-opus-4-6-v1"
            )
            .foundation_model_id(),
            "anthropic.claude-opus-4-6-v1"
        );
    }
}
