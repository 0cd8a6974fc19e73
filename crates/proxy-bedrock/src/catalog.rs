//! Bedrock's own catalog: ListFoundationModels and ListInferenceProfiles read from the control plane,
//! and the route table built from them (Anthropic names for Claude models, the inference profile of
//! the region's geography where a model needs one).
//!
//! The rules:
//! - Only `anthropic.claude*` ids get Anthropic names: the id without `anthropic.`, its `:N` revision
//!   and its `-vN` version (`anthropic.claude-sonnet-4-5-20250929-v1:0` -> `claude-sonnet-4-5-20250929`),
//!   plus, for a dated name, the alias without the date (`claude-sonnet-4-5`; `-0` appended where the
//!   version is a single number, `-latest` for the `claude-3` family, as Anthropic names them). An
//!   alias names the newest dated model that claims it; a model's own name always beats an alias.
//! - A Claude model is called through the inference profile of the region's geography when the
//!   listing has one (more capacity than one region; what the built-in table does), else by its own
//!   id when Bedrock marks it ON_DEMAND, else through its `global.` profile.
//! - Any other model is called by its id when it is ON_DEMAND, else through the geography's profile,
//!   else through `global.`; one with neither (provisioned throughput only) does not route.
//! - The catalog never chooses Bedrock's Messages API route: operators choose it per model with a
//!   `[[models]]` entry (`api = "messages"`), since whether a model is better served there depends on
//!   the account (Mantle projects, data-retention modes) more than on the listing.

// foldhash, not SipHash: these maps are read on every request (Cargo.toml says why it is safe).
use foldhash::HashMap;

use aws_sdk_bedrock::types::{
    FoundationModelSummary, InferenceProfileSummary, InferenceProfileType, InferenceType,
    ModelModality,
};

use crate::routing::{Api, BUILTIN_CLAUDE, EPOCH, Endpoint, ListedModel, Route};
use crate::{UpstreamError, upstream_error};

/// One foundation model as ListFoundationModels describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundationModel {
    /// The bare model id, e.g. `anthropic.claude-opus-4-8`.
    pub id: String,
    /// Bedrock's display name (`modelName`), e.g. `Claude Opus 4.8`.
    pub name: String,
    /// The provider (`providerName`), e.g. `Anthropic`.
    pub provider: String,
    /// Whether the bare id can be invoked (`ON_DEMAND`).
    pub on_demand: bool,
    /// Whether it can be invoked through an inference profile (`INFERENCE_PROFILE`).
    pub via_profile: bool,
}

impl FoundationModel {
    /// From the SDK's summary.
    pub fn from_summary(s: &FoundationModelSummary) -> Self {
        let types = s.inference_types_supported();
        FoundationModel {
            id: s.model_id().to_owned(),
            name: s.model_name().unwrap_or_default().to_owned(),
            provider: s.provider_name().unwrap_or_default().to_owned(),
            on_demand: types.contains(&InferenceType::OnDemand),
            via_profile: types
                .iter()
                .any(|t| t.as_str().eq_ignore_ascii_case("INFERENCE_PROFILE")),
        }
    }
}

/// One system-defined inference profile as ListInferenceProfiles describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InferenceProfile {
    /// The profile id, e.g. `us.anthropic.claude-opus-4-8`.
    pub id: String,
    /// When AWS created it (RFC 3339), if given.
    pub created_at: Option<String>,
}

impl InferenceProfile {
    /// From the SDK's summary.
    pub fn from_summary(s: &InferenceProfileSummary) -> Self {
        InferenceProfile {
            id: s.inference_profile_id().to_owned(),
            created_at: s
                .created_at()
                .and_then(|t| t.fmt(aws_smithy_types::date_time::Format::DateTime).ok()),
        }
    }

    /// The geography and the foundation-model id of a system-defined profile id (`geo.model`).
    fn split(&self) -> Option<(&str, &str)> {
        self.id.split_once('.')
    }
}

/// What the control plane lists: text models and system-defined inference profiles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// ListFoundationModels (text output).
    pub models: Vec<FoundationModel>,
    /// ListInferenceProfiles (system-defined, every page).
    pub profiles: Vec<InferenceProfile>,
}

/// Reads both listings (every page of the profiles).
pub async fn fetch(control: &aws_sdk_bedrock::Client) -> Result<Listing, UpstreamError> {
    let mut profiles = Vec::new();
    let mut token = None;
    loop {
        let page = control
            .list_inference_profiles()
            .type_equals(InferenceProfileType::SystemDefined)
            .max_results(1000)
            .set_next_token(token)
            .send()
            .await
            .map_err(upstream_error)?;
        profiles.extend(
            page.inference_profile_summaries()
                .iter()
                .map(InferenceProfile::from_summary),
        );
        token = page
            .next_token()
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    let models = control
        .list_foundation_models()
        .by_output_modality(ModelModality::Text)
        .send()
        .await
        .map_err(upstream_error)?
        .model_summaries()
        .iter()
        .map(FoundationModel::from_summary)
        .collect();
    Ok(Listing { models, profiles })
}

/// The Anthropic names of a Bedrock id: the model's own name and, for a dated one, its alias.
/// `None` for anything that is not `anthropic.claude*`.
pub fn anthropic_names(bedrock_id: &str) -> Option<(String, Option<String>)> {
    let bare = bedrock_id.strip_prefix("anthropic.")?;
    if !bare.starts_with("claude") {
        return None;
    }
    let bare = bare.split(':').next().unwrap_or(bare);
    // `-v1`, `-v2`: Bedrock's version of the id, not part of Anthropic's name. Kept where nothing
    // with a digit would remain (`claude-v2` is the old model's whole name).
    let name = match bare.rsplit_once("-v") {
        Some((head, v))
            if !v.is_empty()
                && v.bytes().all(|b| b.is_ascii_digit())
                && head.bytes().any(|b| b.is_ascii_digit()) =>
        {
            head
        }
        _ => bare,
    };
    if name.is_empty() {
        return None;
    }
    let alias = name.rsplit_once('-').and_then(|(base, date)| {
        if !is_date(date) {
            return None;
        }
        if base.starts_with("claude-3") {
            return Some(format!("{base}-latest"));
        }
        // `claude-sonnet-4` -> `claude-sonnet-4-0`: one version number gets a `.0`.
        let single = base.rsplit_once('-').is_some_and(|(family, n)| {
            !family.ends_with(|c: char| c.is_ascii_digit()) && is_number(n)
        });
        Some(if single {
            format!("{base}-0")
        } else {
            base.to_owned()
        })
    });
    Some((name.to_owned(), alias))
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_date(s: &str) -> bool {
    s.len() == 8 && s.starts_with("20") && is_number(s)
}

/// A release time from a dated name (`...-20250929`), if it has one.
pub(crate) fn date_of(name: &str) -> Option<String> {
    name.split(['-', ':', '.'])
        .find(|p| is_date(p))
        .map(|d| format!("{}-{}-{}T00:00:00Z", &d[0..4], &d[4..6], &d[6..8]))
}

/// Client names -> routes, and what `GET /v1/models` lists from them.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    names: HashMap<String, Route>,
    claude: Vec<ListedModel>,
    others: Vec<ListedModel>,
    live: bool,
}

impl RouteTable {
    /// The built-in table of Claude models through the `geo` profiles (the offline default).
    pub fn builtin(geo: &str) -> Self {
        let mut table = RouteTable::default();
        for (names, id, display, date) in BUILTIN_CLAUDE {
            let route = Route {
                bedrock_id: format!("{geo}.{id}"),
                api: Api::Invoke,
                endpoint: Endpoint::Runtime,
            };
            for name in *names {
                table.names.insert((*name).to_owned(), route.clone());
                table.claude.push(ListedModel {
                    id: (*name).to_owned(),
                    display_name: (*display).to_owned(),
                    created_at: format!("{date}T00:00:00Z"),
                });
            }
        }
        // Newest first; the sort is stable, so a dated name stays before its alias.
        table.claude.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        table
    }

    /// The table of what Bedrock lists, for a region whose geographies are `geos` (best first).
    pub fn from_listing(listing: &Listing, geos: &[&str]) -> Self {
        // Foundation-model id -> (geographies with a profile, earliest profile creation time).
        let mut profiled: HashMap<&str, (Vec<&str>, Option<&str>)> = HashMap::default();
        for p in &listing.profiles {
            if let Some((geo, model)) = p.split() {
                let entry = profiled.entry(model).or_default();
                entry.0.push(geo);
                if let Some(t) = p.created_at.as_deref()
                    && entry.1.is_none_or(|e| t < e)
                {
                    entry.1 = Some(t);
                }
            }
        }
        struct Claude {
            name: String,
            alias: Option<String>,
            route: Route,
            listed: ListedModel,
        }
        let mut claude = Vec::new();
        let mut table = RouteTable {
            live: true,
            ..RouteTable::default()
        };
        for m in &listing.models {
            let (profile_geos, profile_time) = profiled
                .get(m.id.as_str())
                .map(|(g, t)| (g.as_slice(), *t))
                .unwrap_or((&[], None));
            let names = anthropic_names(&m.id);
            let Some((bedrock_id, backed)) = choose(m, geos, profile_geos, names.is_some()) else {
                continue;
            };
            let api = if names.is_some() {
                Api::Invoke
            } else {
                Api::Converse
            };
            let route = Route {
                bedrock_id,
                api,
                endpoint: Endpoint::Runtime,
            };
            if !m.on_demand {
                // A bare id Bedrock would refuse ("on-demand throughput isn't supported") is the same
                // model through its profile.
                table.names.insert(m.id.clone(), route.clone());
            }
            match names {
                Some((name, alias)) => {
                    let created_at = date_of(&name)
                        .or_else(|| {
                            BUILTIN_CLAUDE
                                .iter()
                                .find(|(.., id, _, _)| *id == m.id)
                                .map(|(.., date)| format!("{date}T00:00:00Z"))
                        })
                        .or_else(|| profile_time.map(str::to_owned))
                        .unwrap_or_else(|| EPOCH.to_owned());
                    let display_name = if m.name.is_empty() {
                        name.clone()
                    } else {
                        m.name.clone()
                    };
                    if backed {
                        claude.push(Claude {
                            listed: ListedModel {
                                id: name.clone(),
                                display_name,
                                created_at,
                            },
                            name,
                            alias,
                            route,
                        });
                    } else {
                        table.names.entry(name).or_insert(route);
                    }
                }
                None if m.on_demand || backed => {
                    table.names.entry(m.id.clone()).or_insert(route);
                    let display = format!("{} {}", m.provider, m.name);
                    table.others.push(ListedModel {
                        id: m.id.clone(),
                        display_name: match display.trim() {
                            "" => m.id.clone(),
                            d => d.to_owned(),
                        },
                        created_at: profile_time.unwrap_or(EPOCH).to_owned(),
                    });
                }
                None => {}
            }
        }
        // Newest first (stable: the listing's order among equals).
        claude.sort_by(|a, b| b.listed.created_at.cmp(&a.listed.created_at));
        // A model's own name first; an alias names the newest model that claims it.
        let mut own = vec![false; claude.len()];
        for (i, c) in claude.iter().enumerate() {
            if !table.names.contains_key(&c.name) {
                table.names.insert(c.name.clone(), c.route.clone());
                own[i] = true;
            }
        }
        for (i, c) in claude.into_iter().enumerate() {
            if !own[i] {
                continue;
            }
            table.claude.push(c.listed.clone());
            if let Some(alias) = c.alias
                && !table.names.contains_key(&alias)
            {
                table.names.insert(alias.clone(), c.route);
                table.claude.push(ListedModel {
                    id: alias,
                    ..c.listed
                });
            }
        }
        table
    }

    /// The route of a name this table knows.
    pub fn get(&self, name: &str) -> Option<&Route> {
        self.names.get(name)
    }

    /// The Claude models it lists by Anthropic name (dated names and aliases), newest first.
    pub fn claude(&self) -> &[ListedModel] {
        &self.claude
    }

    /// The other models it lists by Bedrock id, in the listing's order.
    pub fn others(&self) -> &[ListedModel] {
        &self.others
    }

    /// Whether it was built from Bedrock's listing (otherwise it is the built-in table).
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// How many names route.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether no name routes.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// The Bedrock id a model is called by, and whether the listing backs it (a profile or on-demand
/// throughput it shows, rather than the `global.` profile guessed where it shows none).
fn choose(
    m: &FoundationModel,
    geos: &[&str],
    profile_geos: &[&str],
    claude: bool,
) -> Option<(String, bool)> {
    let geo_profile = geos.iter().find(|g| profile_geos.contains(g));
    let global = profile_geos.contains(&"global");
    let profile = |g: &str| format!("{g}.{}", m.id);
    if claude {
        if let Some(g) = geo_profile {
            return Some((profile(g), true));
        }
        if m.on_demand {
            return Some((m.id.clone(), true));
        }
        if global {
            return Some((profile("global"), true));
        }
        return m.via_profile.then(|| (profile("global"), false));
    }
    if m.on_demand {
        return Some((m.id.clone(), true));
    }
    if let Some(g) = geo_profile {
        return Some((profile(g), true));
    }
    global.then(|| (profile("global"), true))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(id: &str, name: &str, on_demand: bool) -> FoundationModel {
        FoundationModel {
            id: id.into(),
            name: name.into(),
            provider: if id.starts_with("anthropic.") {
                "Anthropic".into()
            } else {
                "Qwen".into()
            },
            on_demand,
            via_profile: true,
        }
    }

    fn profiles(id: &str, geos: &[&str]) -> Vec<InferenceProfile> {
        geos.iter()
            .map(|g| InferenceProfile {
                id: format!("{g}.{id}"),
                created_at: Some("2026-08-01T00:00:00Z".into()),
            })
            .collect()
    }

    #[test]
    fn anthropic_names_from_bedrock_ids() {
        type Names<'a> = Option<(&'a str, Option<&'a str>)>;
        let cases: &[(&str, Names)] = &[
            (
                "anthropic.claude-sonnet-4-5-20250929-v1:0",
                Some(("claude-sonnet-4-5-20250929", Some("claude-sonnet-4-5"))),
            ),
            ("anthropic.claude-opus-4-8", Some(("claude-opus-4-8", None))),
            (
                "anthropic.claude-opus-4-6-v1",
                Some(("claude-opus-4-6", None)),
            ),
            (
                "anthropic.claude-sonnet-4-6",
                Some(("claude-sonnet-4-6", None)),
            ),
            (
                "anthropic.claude-sonnet-4-20250514-v1:0",
                Some(("claude-sonnet-4-20250514", Some("claude-sonnet-4-0"))),
            ),
            (
                "anthropic.claude-3-7-sonnet-20250219-v1:0",
                Some((
                    "claude-3-7-sonnet-20250219",
                    Some("claude-3-7-sonnet-latest"),
                )),
            ),
            (
                "anthropic.claude-3-5-sonnet-20241022-v2:0",
                Some((
                    "claude-3-5-sonnet-20241022",
                    Some("claude-3-5-sonnet-latest"),
                )),
            ),
            ("anthropic.claude-v2:1", Some(("claude-v2", None))),
            (
                "anthropic.claude-instant-v1",
                Some(("claude-instant-v1", None)),
            ),
            ("anthropic.titan-x", None),
            ("qwen.qwen3-coder-480b-a35b-v1:0", None),
            ("us.anthropic.claude-opus-4-8", None),
            ("anthropic.", None),
        ];
        for (id, want) in cases {
            let got = anthropic_names(id);
            let want = want.map(|(n, a)| (n.to_owned(), a.map(str::to_owned)));
            assert_eq!(got, want, "{id}");
        }
    }

    #[test]
    fn on_demand_profile_only_and_global() {
        let mut listing = Listing {
            models: vec![
                // Profile only, with a profile in the region's geography.
                model("anthropic.claude-opus-4-8", "Claude Opus 4.8", false),
                // Profile only, and no profile of the region's geography: global.
                model("anthropic.claude-sonnet-5", "Claude Sonnet 5", false),
                // Both on demand and through the geography's profile: the profile, for Claude.
                model(
                    "anthropic.claude-3-haiku-20240307-v1:0",
                    "Claude 3 Haiku",
                    true,
                ),
                // On demand and no profile: its own id.
                model(
                    "anthropic.claude-3-5-haiku-20241022-v1:0",
                    "Claude 3.5 Haiku",
                    true,
                ),
                // Not Claude: on demand wins over a profile.
                model("qwen.qwen3-coder-480b-a35b-v1:0", "Qwen3 Coder", true),
                // Not Claude, profile only.
                model("deepseek.r1-v1:0", "DeepSeek-R1", false),
                // Provisioned only: nothing routes.
                FoundationModel {
                    via_profile: false,
                    ..model("meta.llama-old", "Old", false)
                },
            ],
            profiles: Vec::new(),
        };
        listing.profiles.extend(profiles(
            "anthropic.claude-opus-4-8",
            &["us", "eu", "global"],
        ));
        listing
            .profiles
            .extend(profiles("anthropic.claude-sonnet-5", &["eu", "global"]));
        listing
            .profiles
            .extend(profiles("anthropic.claude-3-haiku-20240307-v1:0", &["us"]));
        listing
            .profiles
            .extend(profiles("qwen.qwen3-coder-480b-a35b-v1:0", &["us"]));
        listing
            .profiles
            .extend(profiles("deepseek.r1-v1:0", &["us"]));
        let t = RouteTable::from_listing(&listing, &["us"]);
        let id = |name: &str| t.get(name).map(|r| r.bedrock_id.as_str());
        assert_eq!(id("claude-opus-4-8"), Some("us.anthropic.claude-opus-4-8"));
        assert_eq!(
            id("claude-sonnet-5"),
            Some("global.anthropic.claude-sonnet-5")
        );
        assert_eq!(
            id("claude-3-haiku-20240307"),
            Some("us.anthropic.claude-3-haiku-20240307-v1:0")
        );
        assert_eq!(
            id("claude-3-5-haiku-latest"),
            Some("anthropic.claude-3-5-haiku-20241022-v1:0")
        );
        assert_eq!(
            id("qwen.qwen3-coder-480b-a35b-v1:0"),
            Some("qwen.qwen3-coder-480b-a35b-v1:0")
        );
        assert_eq!(id("deepseek.r1-v1:0"), Some("us.deepseek.r1-v1:0"));
        assert_eq!(
            id("anthropic.claude-opus-4-8"),
            Some("us.anthropic.claude-opus-4-8"),
            "a profile-only bare id goes through its profile"
        );
        assert_eq!(id("meta.llama-old"), None);
        assert_eq!(t.get("claude-opus-4-8").map(|r| r.api), Some(Api::Invoke));
        assert_eq!(
            t.get("deepseek.r1-v1:0").map(|r| r.api),
            Some(Api::Converse)
        );
        assert!(t.is_live());

        // Listed: Claude by Anthropic name with Bedrock's display names, no profile ids.
        let claude: Vec<&str> = t.claude().iter().map(|m| m.id.as_str()).collect();
        assert!(claude.contains(&"claude-opus-4-8") && claude.contains(&"claude-sonnet-5"));
        assert!(!claude.iter().any(|c| c.contains('.')), "{claude:?}");
        let opus = t
            .claude()
            .iter()
            .find(|m| m.id == "claude-opus-4-8")
            .unwrap();
        assert_eq!(opus.display_name, "Claude Opus 4.8");
        assert_eq!(opus.created_at, "2026-08-01T00:00:00Z", "from its profile");
        let others: Vec<&str> = t.others().iter().map(|m| m.id.as_str()).collect();
        assert_eq!(
            others,
            ["qwen.qwen3-coder-480b-a35b-v1:0", "deepseek.r1-v1:0"]
        );

        // In Europe the same listing gives eu. profiles; in Japan, global where jp has none.
        let eu = RouteTable::from_listing(&listing, &["eu"]);
        assert_eq!(
            eu.get("claude-sonnet-5").unwrap().bedrock_id,
            "eu.anthropic.claude-sonnet-5"
        );
        let jp = RouteTable::from_listing(&listing, &["jp", "apac"]);
        assert_eq!(
            jp.get("claude-opus-4-8").unwrap().bedrock_id,
            "global.anthropic.claude-opus-4-8"
        );
        assert_eq!(
            jp.get("deepseek.r1-v1:0"),
            None,
            "no jp, apac or global profile and not on demand"
        );
    }

    #[test]
    fn newest_first_and_aliases_to_the_newest() {
        let listing = Listing {
            models: vec![
                model(
                    "anthropic.claude-sonnet-4-5-20250929-v1:0",
                    "Claude Sonnet 4.5",
                    true,
                ),
                model(
                    "anthropic.claude-sonnet-4-5-20251201-v1:0",
                    "Claude Sonnet 4.5 (December)",
                    true,
                ),
                model("anthropic.claude-opus-4-6-v1", "Claude Opus 4.6", true),
            ],
            profiles: Vec::new(),
        };
        let t = RouteTable::from_listing(&listing, &["us"]);
        assert_eq!(
            t.get("claude-sonnet-4-5").unwrap().bedrock_id,
            "anthropic.claude-sonnet-4-5-20251201-v1:0"
        );
        let ids: Vec<&str> = t.claude().iter().map(|m| m.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "claude-opus-4-6",
                "claude-sonnet-4-5-20251201",
                "claude-sonnet-4-5",
                "claude-sonnet-4-5-20250929"
            ],
            "Opus 4.6's release date is known; an alias follows its model"
        );
        assert_eq!(t.claude()[0].created_at, "2026-02-05T00:00:00Z");
    }

    #[test]
    fn from_the_sdks_own_summaries() {
        let summary = FoundationModelSummary::builder()
            .model_arn("arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-opus-4-8")
            .model_id("anthropic.claude-opus-4-8")
            .model_name("Claude Opus 4.8")
            .provider_name("Anthropic")
            .output_modalities(ModelModality::Text)
            .inference_types_supported(InferenceType::from("INFERENCE_PROFILE"))
            .build()
            .unwrap();
        let m = FoundationModel::from_summary(&summary);
        assert!(!m.on_demand && m.via_profile);
        let profile = InferenceProfileSummary::builder()
            .inference_profile_name("US Anthropic Claude Opus 4.8")
            .inference_profile_arn(
                "arn:aws:bedrock:us-east-1:1:inference-profile/us.anthropic.claude-opus-4-8",
            )
            .inference_profile_id("us.anthropic.claude-opus-4-8")
            .status(aws_sdk_bedrock::types::InferenceProfileStatus::Active)
            .r#type(InferenceProfileType::SystemDefined)
            .models(
                aws_sdk_bedrock::types::InferenceProfileModel::builder()
                    .model_arn(
                        "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-opus-4-8",
                    )
                    .build(),
            )
            .created_at(aws_smithy_types::DateTime::from_secs(1_780_000_000))
            .build()
            .unwrap();
        let p = InferenceProfile::from_summary(&profile);
        assert_eq!(p.created_at.as_deref(), Some("2026-05-28T20:26:40Z"));
        let t = RouteTable::from_listing(
            &Listing {
                models: vec![m],
                profiles: vec![p],
            },
            &["us"],
        );
        assert_eq!(
            t.get("claude-opus-4-8").unwrap().bedrock_id,
            "us.anthropic.claude-opus-4-8"
        );
        assert_eq!(t.claude()[0].created_at, "2026-05-28T20:26:40Z");
    }
}
