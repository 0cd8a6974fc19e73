//! The optional price table of the config file, for cost estimates of usage:
//!
//! ```toml
//! [prices."claude-sonnet-4-5-20250929"]   # a client model name, or a prefix ending in `*`
//! input = 3.0          # USD per million uncached input tokens
//! output = 15.0        # USD per million output tokens
//! cache_read = 0.30    # per million cache-read tokens (default: the input price)
//! cache_write = 3.75   # per million cache-write tokens (default: the input price)
//!
//! [prices."qwen.*"]
//! input = 0.22
//! output = 1.8
//! ```
//!
//! An exact name wins over a prefix; among prefixes the longest wins. A model without a price has
//! no cost estimate (never a guessed one).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::UsageRow;

/// Prices of one model, USD per million tokens.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Uncached input tokens.
    pub input: f64,
    /// Output tokens.
    pub output: f64,
    /// Cache reads (default: `input`).
    #[serde(default)]
    pub cache_read: Option<f64>,
    /// Cache writes (default: `input`).
    #[serde(default)]
    pub cache_write: Option<f64>,
}

/// Model name (or `prefix*`) -> price.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct PriceTable(BTreeMap<String, Price>);

impl PriceTable {
    /// The `prices` table of a config file's text (TOML); no table gives an empty price table.
    /// Other tables of the file (model routes) are not looked at.
    pub fn from_config(text: &str) -> Result<Self, String> {
        let mut doc: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        Self::take_from(&mut doc)
    }

    /// Takes the `prices` table out of a parsed config file (leaving the rest, e.g. the model routes,
    /// for their own reader) and checks it; no table gives an empty price table.
    pub fn take_from(doc: &mut toml::Table) -> Result<Self, String> {
        let Some(prices) = doc.remove("prices") else {
            return Ok(PriceTable::default());
        };
        let table: PriceTable = prices
            .try_into()
            .map_err(|e: toml::de::Error| format!("prices: {}", e.message()))?;
        for (model, p) in &table.0 {
            let all = [Some(p.input), Some(p.output), p.cache_read, p.cache_write];
            if all.iter().flatten().any(|v| !v.is_finite() || *v < 0.0) {
                return Err(format!(
                    "prices.\"{model}\": prices must be non-negative numbers"
                ));
            }
        }
        Ok(table)
    }

    /// Whether the table has no prices.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The price of a client model name: its own, else the longest matching `prefix*`.
    pub fn price(&self, model: &str) -> Option<&Price> {
        self.0.get(model).or_else(|| {
            self.0
                .iter()
                .filter_map(|(k, p)| Some((k.strip_suffix('*')?, p)))
                .filter(|(prefix, _)| model.starts_with(prefix))
                .max_by_key(|(prefix, _)| prefix.len())
                .map(|(_, p)| p)
        })
    }

    /// The estimated cost of a usage row in USD, if its model has a price.
    pub fn cost(&self, row: &UsageRow) -> Option<f64> {
        self.cost_of(
            &row.model,
            [
                row.input_tokens,
                row.output_tokens,
                row.cache_read_input_tokens,
                row.cache_creation_input_tokens,
            ],
        )
    }

    /// The estimated cost in USD of `[input, output, cache_read, cache_write]` tokens of `model`, if
    /// it has a price.
    pub fn cost_of(&self, model: &str, tokens: [u64; 4]) -> Option<f64> {
        let p = self.price(model)?;
        let [input, output, read, write] = tokens;
        let per = |tokens: u64, usd: f64| tokens as f64 * usd / 1e6;
        Some(
            per(input, p.input)
                + per(output, p.output)
                + per(read, p.cache_read.unwrap_or(p.input))
                + per(write, p.cache_write.unwrap_or(p.input)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(model: &str) -> UsageRow {
        UsageRow {
            key_id: "k".into(),
            user_id: "u".into(),
            day: "2026-11-30".into(),
            model: model.into(),
            requests: 3,
            input_tokens: 1_000_000,
            output_tokens: 200_000,
            cache_read_input_tokens: 500_000,
            cache_creation_input_tokens: 100_000,
        }
    }

    #[test]
    fn costs_follow_exact_names_then_the_longest_prefix() {
        let t = PriceTable::from_config(
            r#"
            fallback_model = "x"
            [[models]]
            name = "a"
            [prices."claude-sonnet-4-5-20250929"]
            input = 3.0
            output = 15.0
            cache_read = 0.3
            cache_write = 3.75
            [prices."claude-*"]
            input = 1.0
            output = 5.0
            [prices."claude-opus-*"]
            input = 5.0
            output = 25.0
            "#,
        )
        .unwrap();
        let close = |a: Option<f64>, b: f64| assert!((a.unwrap() - b).abs() < 1e-9, "{a:?} vs {b}");
        close(
            t.cost(&row("claude-sonnet-4-5-20250929")),
            3.0 + 3.0 + 0.15 + 0.375,
        );
        // Cache tokens at the input price when the table has none.
        close(t.cost(&row("claude-haiku-4-5")), 1.0 + 1.0 + 0.5 + 0.1);
        close(t.cost(&row("claude-opus-4-6")), 5.0 + 5.0 + 2.5 + 0.5);
        assert_eq!(t.cost(&row("qwen.qwen3-coder")), None);
    }

    #[test]
    fn bad_tables_are_named() {
        assert!(PriceTable::from_config("").unwrap().is_empty());
        let e = PriceTable::from_config("[prices.m]\ninput = 1.0\n").unwrap_err();
        assert!(e.contains("output"), "{e}");
        let e =
            PriceTable::from_config("[prices.m]\ninput = 1.0\noutput = 2\nfoo = 1\n").unwrap_err();
        assert!(e.contains("foo"), "{e}");
        let e = PriceTable::from_config("[prices.m]\ninput = -1.0\noutput = 2.0\n").unwrap_err();
        assert!(e.contains("non-negative"), "{e}");
    }
}
