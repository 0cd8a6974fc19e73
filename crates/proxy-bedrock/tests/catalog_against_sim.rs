//! The route table read from bedrock-sim's control plane through the real `aws-sdk-bedrock` calls
//! (ListFoundationModels, ListInferenceProfiles), as `proxy-server` reads Bedrock's.

use aws_sdk_bedrock::config::{BehaviorVersion, Credentials, Region};
use bedrock_sim::testing::LocalSim;
use proxy_bedrock::{Api, Router, RoutingConfig, catalog};

/// The sim's built-in catalog plus models served only through inference profiles, the way Bedrock
/// serves Claude since Opus 4.7.
const EXTRA_MODELS: &str = r#"
[[model]]
id = "anthropic.claude-opus-4-8"
name = "Claude Opus 4.8"
provider = "Anthropic"
on_demand = false
geos = ["us", "eu", "global"]

[[model]]
id = "anthropic.claude-sonnet-5"
name = "Claude Sonnet 5"
provider = "Anthropic"
on_demand = false
geos = ["eu", "global"]
"#;

async fn control(sim: &LocalSim) -> aws_sdk_bedrock::Client {
    let conf = aws_sdk_bedrock::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .endpoint_url(sim.url())
        .build();
    aws_sdk_bedrock::Client::from_conf(conf)
}

#[tokio::test]
async fn routes_from_the_sims_catalog() {
    let config = bedrock_sim::Config::from_toml(EXTRA_MODELS).unwrap();
    let sim = LocalSim::start(config).await.unwrap();
    let listing = catalog::fetch(&control(&sim).await).await.unwrap();
    assert!(
        listing
            .models
            .iter()
            .any(|m| m.id == "anthropic.claude-opus-4-8" && !m.on_demand)
    );
    assert!(
        listing
            .profiles
            .iter()
            .any(|p| p.id == "global.anthropic.claude-sonnet-5")
    );

    let router = Router::new(RoutingConfig::default(), "us-east-1");
    router.update(&listing);
    let id = |name: &str| router.resolve(name).unwrap().bedrock_id;
    // Profile only: the geography's profile, else global.
    assert_eq!(id("claude-opus-4-8"), "us.anthropic.claude-opus-4-8");
    assert_eq!(id("claude-sonnet-5"), "global.anthropic.claude-sonnet-5");
    // Dated names and their aliases.
    assert_eq!(
        id("claude-sonnet-4-5"),
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    );
    assert_eq!(id("claude-opus-4-6"), "us.anthropic.claude-opus-4-6-v1");
    // Claude on demand and through a us. profile: the profile.
    assert_eq!(
        id("claude-3-haiku-20240307"),
        "us.anthropic.claude-3-haiku-20240307-v1:0"
    );
    // Other models: on demand by id (Converse), profile-only through the profile.
    let qwen = router.resolve("qwen.qwen3-coder-480b-a35b-v1:0").unwrap();
    assert_eq!(
        (qwen.bedrock_id.as_str(), qwen.api),
        ("qwen.qwen3-coder-480b-a35b-v1:0", Api::Converse)
    );
    assert_eq!(id("deepseek.r1-v1:0"), "us.deepseek.r1-v1:0");

    let listed = router.listed(true);
    let ids: Vec<&str> = listed.iter().map(|m| m.id.as_str()).collect();
    for want in [
        "claude-opus-4-8",
        "claude-sonnet-5",
        "claude-sonnet-4-5-20250929",
        "claude-sonnet-4-5",
        "claude-haiku-4-5",
        "qwen.qwen3-coder-480b-a35b-v1:0",
    ] {
        assert!(ids.contains(&want), "{want} in {ids:?}");
    }
    assert!(
        !ids.iter()
            .any(|i| i.starts_with("us.") || i.starts_with("global.")),
        "no profile ids: {ids:?}"
    );
    let unique: std::collections::HashSet<&&str> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "{ids:?}");
    let opus = listed.iter().find(|m| m.id == "claude-opus-4-8").unwrap();
    assert_eq!(opus.display_name, "Claude Opus 4.8");
    // Claude first, newest first.
    let first_other = ids.iter().position(|i| !i.starts_with("claude-")).unwrap();
    assert!(ids[first_other..].iter().all(|i| !i.starts_with("claude-")));
    let dates: Vec<&str> = listed[..first_other]
        .iter()
        .map(|m| m.created_at.as_str())
        .collect();
    assert!(dates.windows(2).all(|w| w[0] >= w[1]), "{dates:?}");
    assert!(
        !router
            .listed(false)
            .iter()
            .any(|m| m.id.starts_with("qwen."))
    );

    // In Europe, the same catalog gives eu. profiles.
    let eu = Router::new(RoutingConfig::default(), "eu-west-1");
    eu.update(&listing);
    assert_eq!(
        eu.resolve("claude-sonnet-5").unwrap().bedrock_id,
        "eu.anthropic.claude-sonnet-5"
    );
}

#[tokio::test]
async fn an_unreachable_control_plane_is_an_error() {
    let sim = LocalSim::start(bedrock_sim::Config::default())
        .await
        .unwrap();
    let client = control(&sim).await;
    drop(sim);
    // Give the server task a moment to stop accepting.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(catalog::fetch(&client).await.is_err());
}
