//! Model routing: the name a client sends -> the Bedrock id and the route (native, Converse, or
//! Bedrock's Messages API).
//!
//! Precedence: the config file's `[[models]]`, then the route table (built from Bedrock's own
//! catalog, see [`crate::catalog`]; the built-in table of Claude models until the catalog has been
//! read), then the rules for names found nowhere: a `claude-*` name goes to `fallback_model` when the
//! operator set one, else to Bedrock as itself (`anthropic.<name>` through the geography's profile,
//! on the native route), so it is never silently served by another model; anything else is taken as
//! a Bedrock id (Claude ids on the native route, the rest on Converse).

use std::sync::{Arc, RwLock};

use serde::Deserialize;

use crate::catalog::{Listing, RouteTable};

/// How a model is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// InvokeModel with the native Claude body.
    Invoke,
    /// Converse / ConverseStream.
    Converse,
    /// Bedrock's Anthropic Messages API (`/anthropic/v1/messages`), on the [`Endpoint`] of the
    /// route. Only a `[[models]]` entry chooses it; the catalog never does.
    Messages,
}

pub use crate::messages::Endpoint;

/// One `[[models]]` entry of the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRoute {
    /// What clients send.
    pub name: String,
    /// What Bedrock gets (model id, inference profile id, or ARN).
    pub bedrock_id: String,
    /// `invoke` (native Claude body), `converse`, or `messages` (Bedrock's Messages API).
    pub api: Api,
    /// The host of `api = "messages"`: `runtime` (default) or `mantle`.
    #[serde(default)]
    pub endpoint: Option<Endpoint>,
    /// Name shown by `GET /v1/models`.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Where to go, in order, when this route stays throttled or unavailable after its retries:
    /// another geography's profile (`global.anthropic.…`) or another model (`claude-sonnet-4-6`),
    /// each resolved like a requested name, on its own route.
    #[serde(default)]
    pub fallbacks: Vec<String>,
}

/// The routing part of the config file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// Explicit routes, checked before Bedrock's catalog and the built-in table.
    #[serde(default)]
    pub models: Vec<ModelRoute>,
    /// Where `claude-*` names found nowhere go (a name that itself routes). Unset, such a name goes
    /// to Bedrock as itself.
    #[serde(default)]
    pub fallback_model: Option<String>,
    /// Geography prefix of the Claude inference profiles (`us`, `eu`, `apac`, `jp`, `au`,
    /// `global`, ...); by default derived from the region.
    #[serde(default)]
    pub profile_prefix: Option<String>,
}

impl RoutingConfig {
    /// What is wrong with the config, if anything: an `endpoint` on a route that is not
    /// `api = "messages"`, a name or prefix that cannot be a model name.
    pub fn check(&self) -> Result<(), String> {
        for m in &self.models {
            if m.endpoint.is_some() && m.api != Api::Messages {
                return Err(format!(
                    "[[models]] `{}`: endpoint applies only to api = \"messages\"",
                    m.name
                ));
            }
            if let Some(f) = m.fallbacks.iter().find(|f| !valid_name(f) || **f == m.name) {
                return Err(format!(
                    "[[models]] `{}`: fallback `{f}` is not another model name",
                    m.name
                ));
            }
            if !valid_name(&m.name) || !valid_name(&m.bedrock_id) {
                return Err(format!(
                    "[[models]] `{}`: name and bedrock_id must be model names (letters, digits, `-._:/`)",
                    m.name
                ));
            }
        }
        if let Some(p) = &self.profile_prefix
            && (p.is_empty() || !p.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'))
        {
            return Err(format!(
                "profile_prefix `{p}` is not a geography such as `us` or `global`"
            ));
        }
        Ok(())
    }
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The Bedrock model id.
    pub bedrock_id: String,
    /// The call style.
    pub api: Api,
    /// The host of the Messages API route ([`Endpoint::Runtime`] for the others).
    pub endpoint: Endpoint,
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

const GEOS: &[&str] = &[
    "us", "eu", "apac", "jp", "global", "au", "ca", "us-gov", "in",
];

/// `GET /v1/models`'s time for a model with no known release date.
pub(crate) const EPOCH: &str = "1970-01-01T00:00:00Z";

/// The current Claude models: (client names, foundation-model id, display name, release date).
pub(crate) const BUILTIN_CLAUDE: &[(&[&str], &str, &str, &str)] = &[
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
    /// Not a model name at all (characters no Bedrock id has).
    #[error("model `{0}` is not a model name the gateway can route")]
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

/// Resolves client model names. The route table inside is swapped whole when Bedrock's catalog is
/// read again; a resolution takes the read lock only to clone an `Arc`.
#[derive(Debug)]
pub struct Router {
    config: RoutingConfig,
    /// The geographies whose profiles serve this region, best first.
    geos: Vec<String>,
    table: RwLock<Arc<RouteTable>>,
}

/// The inference-profile geography of a region (the best of [`geographies`]).
pub fn geography(region: &str) -> &'static str {
    geographies(region)[0]
}

/// The inference-profile geographies that serve a region, best first. Sydney and Melbourne have
/// `au.` profiles and Tokyo and Osaka `jp.` ones for recent models, older models only `apac.` ones;
/// regions of no listed geography (South America, the Middle East, ...) are assumed to be served by
/// `us.` profiles, as before the catalog. The catalog falls back to `global.` after these.
pub fn geographies(region: &str) -> &'static [&'static str] {
    match region {
        r if r.starts_with("us-gov-") => &["us-gov"],
        r if r.starts_with("us-") || r.starts_with("ca-") => &["us"],
        r if r.starts_with("eu-") => &["eu"],
        "ap-northeast-1" | "ap-northeast-3" => &["jp", "apac"],
        "ap-southeast-2" | "ap-southeast-4" => &["au", "apac"],
        r if r.starts_with("ap-") => &["apac"],
        _ => &["us"],
    }
}

/// Whether `s` can be a model name or Bedrock id (Bedrock's `modelId` pattern, at most 2048
/// characters).
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 2048
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:/".contains(&b))
}

impl Router {
    /// A router for `region` with the config file's routing part, on the built-in table until
    /// [`Router::update`] gives it Bedrock's catalog.
    pub fn new(config: RoutingConfig, region: &str) -> Self {
        let geos: Vec<String> = match &config.profile_prefix {
            Some(p) => vec![p.clone()],
            None => geographies(region)
                .iter()
                .map(|g| (*g).to_owned())
                .collect(),
        };
        let table = RouteTable::builtin(&geos[0]);
        Router {
            config,
            geos,
            table: RwLock::new(Arc::new(table)),
        }
    }

    /// The route table in use.
    pub fn table(&self) -> Arc<RouteTable> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Builds the route table from Bedrock's listing and puts it in use; returns it.
    pub fn update(&self, listing: &Listing) -> Arc<RouteTable> {
        let geos: Vec<&str> = self.geos.iter().map(String::as_str).collect();
        let table = Arc::new(RouteTable::from_listing(listing, &geos));
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = table.clone();
        table
    }

    /// The route of a client model name. The response always carries the name the client sent.
    pub fn resolve(&self, name: &str) -> Result<Route, RouteError> {
        self.resolve_inner(name, true)
    }

    /// The `fallbacks` chain of a client model name (its `[[models]]` entry's), each resolved like
    /// a requested name; empty for a name without one.
    pub fn fallbacks(&self, name: &str) -> Vec<crate::Target> {
        let Some(m) = self.config.models.iter().find(|m| m.name == name) else {
            return Vec::new();
        };
        m.fallbacks
            .iter()
            .filter_map(|f| {
                Some(crate::Target {
                    name: f.clone(),
                    route: self.resolve(f).ok()?,
                })
            })
            .collect()
    }

    fn resolve_inner(&self, name: &str, allow_fallback: bool) -> Result<Route, RouteError> {
        if let Some(m) = self.config.models.iter().find(|m| m.name == name) {
            return Ok(Route {
                bedrock_id: m.bedrock_id.clone(),
                api: m.api,
                endpoint: m.endpoint.unwrap_or_default(),
            });
        }
        if let Some(route) = self
            .table
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Ok(route.clone());
        }
        if !valid_name(name) {
            return Err(RouteError::Unknown(name.to_owned()));
        }
        if name.starts_with("claude-") {
            if let Some(fallback) = &self.config.fallback_model
                && allow_fallback
            {
                return self.resolve_inner(fallback, false);
            }
            // Bedrock as itself: its refusal, if it has no such model, is the client's answer.
            return Ok(Route {
                bedrock_id: format!("{}.anthropic.{name}", self.geos[0]),
                api: Api::Invoke,
                endpoint: Endpoint::Runtime,
            });
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
            endpoint: Endpoint::Runtime,
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

    /// The configured fallback when the route table in use does not know it (neither
    /// `[[models]]` nor the table has it): worth a warning once Bedrock's catalog is read.
    pub fn fallback_unknown(&self) -> Option<&str> {
        let fallback = self.config.fallback_model.as_deref()?;
        let configured = self.config.models.iter().any(|m| m.name == fallback);
        (!configured && self.table().get(fallback).is_none()).then_some(fallback)
    }

    /// The models `GET /v1/models` lists: configured names first (newest first), then every Claude
    /// model of the route table by its Anthropic names (newest first), then, with `others`, the
    /// other models Bedrock lists, by their Bedrock ids.
    pub fn listed(&self, others: bool) -> Vec<ListedModel> {
        let mut out: Vec<ListedModel> = self
            .config
            .models
            .iter()
            .map(|m| ListedModel {
                id: m.name.clone(),
                display_name: m.display_name.clone().unwrap_or_else(|| m.name.clone()),
                created_at: crate::catalog::date_of(&m.name).unwrap_or_else(|| EPOCH.to_owned()),
            })
            .collect();
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        let configured = out.len();
        let table = self.table();
        let rest = table
            .claude()
            .iter()
            .chain(if others { table.others() } else { &[] });
        for m in rest {
            if !out[..configured].iter().any(|o| o.id == m.id) {
                out.push(m.clone());
            }
        }
        out
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{FoundationModel, InferenceProfile};

    fn route(id: &str, api: Api) -> Route {
        Route {
            bedrock_id: id.into(),
            api,
            endpoint: Endpoint::Runtime,
        }
    }

    /// Bedrock's listing with Opus 4.8 (profile only: us, eu, global) and Sonnet 4.5 (on demand too).
    fn listing() -> Listing {
        let claude = |id: &str, name: &str, on_demand: bool| FoundationModel {
            id: id.into(),
            name: name.into(),
            provider: "Anthropic".into(),
            on_demand,
            via_profile: true,
        };
        let profile = |id: &str| InferenceProfile {
            id: id.into(),
            created_at: Some("2026-09-01T00:00:00Z".into()),
        };
        Listing {
            models: vec![
                claude("anthropic.claude-opus-4-8", "Claude Opus 4.8", false),
                claude(
                    "anthropic.claude-sonnet-4-5-20250929-v1:0",
                    "Claude Sonnet 4.5",
                    true,
                ),
            ],
            profiles: vec![
                profile("us.anthropic.claude-opus-4-8"),
                profile("eu.anthropic.claude-opus-4-8"),
                profile("global.anthropic.claude-opus-4-8"),
                profile("us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
            ],
        }
    }

    #[test]
    fn routes_names_offline() {
        let r = Router::new(RoutingConfig::default(), "us-east-1");
        assert!(!r.table().is_live());
        assert_eq!(
            r.resolve("claude-sonnet-4-5-20250929").unwrap(),
            route("us.anthropic.claude-sonnet-4-5-20250929-v1:0", Api::Invoke)
        );
        assert_eq!(
            r.resolve("qwen.qwen3-coder-480b-a35b-v1:0").unwrap(),
            route("qwen.qwen3-coder-480b-a35b-v1:0", Api::Converse)
        );
        assert_eq!(
            r.resolve("eu.anthropic.claude-sonnet-4-20250514-v1:0")
                .unwrap()
                .api,
            Api::Invoke
        );
        let eu = Router::new(RoutingConfig::default(), "eu-west-1");
        assert_eq!(
            eu.resolve("claude-haiku-4-5").unwrap().bedrock_id,
            "eu.anthropic.claude-haiku-4-5-20251001-v1:0"
        );
        assert_eq!(geography("ap-northeast-1"), "jp");
        assert_eq!(geography("ap-southeast-2"), "au");
        assert_eq!(geographies("ap-southeast-4"), ["au", "apac"]);
        assert_eq!(geography("ap-south-1"), "apac");
        assert_eq!(geography("us-gov-west-1"), "us-gov");
        assert_eq!(geography("ca-central-1"), "us");
    }

    #[test]
    fn a_claude_name_found_nowhere_goes_to_bedrock_as_itself() {
        let r = Router::new(RoutingConfig::default(), "eu-central-1");
        assert_eq!(
            r.resolve("claude-opus-9-9").unwrap(),
            route("eu.anthropic.claude-opus-9-9", Api::Invoke)
        );
        // Not after the catalog was read either: never another model.
        r.update(&listing());
        assert_eq!(
            r.resolve("claude-opus-9-9").unwrap().bedrock_id,
            "eu.anthropic.claude-opus-9-9"
        );
        for bad in ["", "claude-opus 4", "claude-\u{e9}", "claude-x\n"] {
            assert!(
                matches!(r.resolve(bad), Err(RouteError::Unknown(_))),
                "{bad:?}"
            );
        }
        assert!(r.resolve(&format!("claude-{}", "a".repeat(3000))).is_err());
    }

    #[test]
    fn the_catalog_replaces_the_builtin_table() {
        let r = Router::new(RoutingConfig::default(), "us-west-2");
        assert_eq!(
            r.resolve("claude-opus-4-8").unwrap().bedrock_id,
            "us.anthropic.claude-opus-4-8",
            "before the catalog: as itself, which is the same id here"
        );
        let table = r.update(&listing());
        assert!(table.is_live() && r.table().is_live());
        assert_eq!(
            r.resolve("claude-sonnet-4-5").unwrap(),
            route("us.anthropic.claude-sonnet-4-5-20250929-v1:0", Api::Invoke)
        );
        // Built-in names the listing lacks go to Bedrock as themselves.
        assert_eq!(
            r.resolve("claude-opus-4-6").unwrap().bedrock_id,
            "us.anthropic.claude-opus-4-6"
        );
        let ids: Vec<String> = r.listed(true).into_iter().map(|m| m.id).collect();
        assert_eq!(
            ids,
            [
                "claude-opus-4-8",
                "claude-sonnet-4-5-20250929",
                "claude-sonnet-4-5"
            ]
        );
        // profile_prefix overrides the region's geography.
        let global = Router::new(
            RoutingConfig {
                profile_prefix: Some("global".into()),
                ..RoutingConfig::default()
            },
            "us-west-2",
        );
        global.update(&listing());
        assert_eq!(
            global.resolve("claude-opus-4-8").unwrap().bedrock_id,
            "global.anthropic.claude-opus-4-8"
        );
        assert_eq!(
            global.resolve("claude-sonnet-4-5").unwrap().bedrock_id,
            "anthropic.claude-sonnet-4-5-20250929-v1:0",
            "no global profile listed: on demand"
        );
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
            [[models]]
            name = "claude-opus-4-8"
            bedrock_id = "anthropic.claude-opus-4-8"
            api = "messages"
            endpoint = "mantle"
            [[models]]
            name = "claude-sonnet-5"
            bedrock_id = "us.anthropic.claude-sonnet-5"
            api = "messages"
            "#,
        )
        .unwrap();
        config.check().unwrap();
        let r = Router::new(config, "us-east-1");
        r.update(&listing());
        assert_eq!(r.resolve("coder").unwrap().api, Api::Converse);
        // [[models]] beats the catalog.
        assert_eq!(
            r.resolve("claude-opus-4-8").unwrap(),
            Route {
                bedrock_id: "anthropic.claude-opus-4-8".into(),
                api: Api::Messages,
                endpoint: Endpoint::Mantle
            }
        );
        assert_eq!(
            r.resolve("claude-sonnet-5").unwrap().endpoint,
            Endpoint::Runtime
        );
        // The operator's fallback takes unknown claude-* names.
        assert_eq!(
            r.resolve("claude-opus-9-9").unwrap().bedrock_id,
            "anthropic.claude-sonnet-4-5-20250929-v1:0"
        );
        assert_eq!(r.fallback_error(), None);
        assert_eq!(r.fallback_unknown(), None);
        let listed = r.listed(true);
        assert_eq!(listed[0].id, "coder");
        assert_eq!(listed[0].created_at, "1970-01-01T00:00:00Z");
        assert_eq!(
            listed.iter().filter(|m| m.id == "claude-opus-4-8").count(),
            1,
            "a configured name is listed once"
        );
        assert!(listed.iter().any(
            |m| m.id == "claude-sonnet-4-5-20250929" && m.created_at == "2025-09-29T00:00:00Z"
        ));
        assert!(
            toml::from_str::<RoutingConfig>("[[models]]\nname='a'\nbedrock_id='b'\napi='fax'")
                .is_err()
        );
        assert!(
            toml::from_str::<RoutingConfig>(
                "[[models]]\nname='a'\nbedrock_id='b'\napi='messages'\nendpoint='moon'"
            )
            .is_err()
        );
        let misplaced: RoutingConfig =
            toml::from_str("[[models]]\nname='a'\nbedrock_id='b'\napi='invoke'\nendpoint='mantle'")
                .unwrap();
        assert!(misplaced.check().unwrap_err().contains("endpoint"));
        let prefix: RoutingConfig = toml::from_str("profile_prefix = 'us.'").unwrap();
        assert!(prefix.check().is_err());
    }

    #[test]
    fn fallback_checks() {
        let r = Router::new(
            RoutingConfig {
                fallback_model: Some("claude bad".into()),
                ..RoutingConfig::default()
            },
            "us-east-1",
        );
        assert!(r.fallback_error().is_some());
        let r = Router::new(
            RoutingConfig {
                fallback_model: Some("claude-opus-4-8".into()),
                ..RoutingConfig::default()
            },
            "us-east-1",
        );
        assert_eq!(r.fallback_error(), None);
        assert_eq!(r.fallback_unknown(), Some("claude-opus-4-8"));
        r.update(&listing());
        assert_eq!(r.fallback_unknown(), None);
        // A fallback is not itself fallen back from.
        assert_eq!(
            r.resolve("claude-nope").unwrap().bedrock_id,
            "us.anthropic.claude-opus-4-8"
        );
    }

    #[test]
    fn foundation_ids_for_count_tokens() {
        assert_eq!(
            route("us.anthropic.claude-sonnet-4-5-20250929-v1:0", Api::Invoke)
                .foundation_model_id(),
            "anthropic.claude-sonnet-4-5-20250929-v1:0"
        );
        assert_eq!(
            route("anthropic.claude-3-haiku-20240307-v1:0", Api::Invoke).foundation_model_id(),
            "anthropic.claude-3-haiku-20240307-v1:0"
        );
        assert_eq!(
            route(
                "arn:aws:bedrock:us-east-1:1:inference-profile/global.anthropic.claude-opus-4-6-v1",
                Api::Invoke
            )
            .foundation_model_id(),
            "anthropic.claude-opus-4-6-v1"
        );
    }
}
