//! What an answer cost, honestly: the provider's own figure when it gives one, else the price
//! table the user named (`--prices`, `LiteLLM`'s `model_prices_and_context_window.json` as is),
//! else unknown (`null`, never `0`). No price is built in: a built-in list would be wrong within
//! weeks. Also `--max-budget-usd`'s arithmetic for a batch (`CostBudget`).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::Usage;

/// Where a cost came from (`cost_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CostSource {
    /// The provider's own figure: `usage.cost` (`OpenRouter`, `LiteLLM`) or `LiteLLM`'s
    /// `x-litellm-response-cost` header.
    Provider,
    /// Computed from the token counts and `--prices`.
    PriceTable,
    /// A batch total whose jobs had different sources.
    Mixed,
}

/// A cost in US dollars and where it came from; both `None` when it is unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Cost {
    pub(crate) usd: Option<f64>,
    pub(crate) source: Option<CostSource>,
}

impl Cost {
    pub(crate) fn known(usd: f64, source: CostSource) -> Self {
        Self {
            usd: Some(usd),
            source: Some(source),
        }
    }

    /// The cost of one exchange: the provider's figure, else the table's price of `usage` for the
    /// first of `models` it lists, else unknown.
    pub(crate) fn of(
        provider: Option<f64>,
        usage: Option<Usage>,
        models: &[&str],
        prices: Option<&PriceTable>,
    ) -> Self {
        if let Some(usd) = provider {
            return Self::known(usd, CostSource::Provider);
        }
        let (Some(usage), Some(table)) = (usage, prices) else {
            return Self::default();
        };
        models
            .iter()
            .find_map(|m| table.get(m))
            .and_then(|price| price.cost(&usage))
            .map_or_else(Self::default, |usd| {
                Self::known(usd, CostSource::PriceTable)
            })
    }
}

/// What a provider batch's answer cost.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct BatchCost {
    pub(crate) cost: Cost,
    /// Priced from the table's regular prices: it has no batch prices for the model, so the
    /// figure is likely twice what the provider bills.
    pub(crate) regular_rate: bool,
}

impl BatchCost {
    /// The cost of one answer of a provider's Batch API: the provider's figure, else the table's
    /// batch prices (`input_cost_per_token_batches`, `output_cost_per_token_batches`) for the
    /// first of `models` it lists, else its regular prices (said in `regular_rate`), else unknown.
    pub(crate) fn of(
        provider: Option<f64>,
        usage: Option<Usage>,
        models: &[&str],
        prices: Option<&PriceTable>,
    ) -> Self {
        if provider.is_some() {
            return Self {
                cost: Cost::of(provider, usage, models, prices),
                regular_rate: false,
            };
        }
        let (Some(usage), Some(table)) = (usage, prices) else {
            return Self::default();
        };
        let Some(price) = models.iter().find_map(|m| table.get(m)) else {
            return Self::default();
        };
        let batch = price.batch();
        let cost = batch
            .unwrap_or(*price)
            .cost(&usage)
            .map_or_else(Cost::default, |usd| {
                Cost::known(usd, CostSource::PriceTable)
            });
        Self {
            cost,
            regular_rate: batch.is_none() && cost.usd.is_some(),
        }
    }
}

/// A running total of costs (a batch): the sum of the known ones, where they came from, and how
/// many were unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct CostTotal {
    pub(crate) usd: Option<f64>,
    pub(crate) source: Option<CostSource>,
    pub(crate) unknown: u64,
}

impl CostTotal {
    pub(crate) fn add(&mut self, cost: Cost) {
        match (cost.usd, cost.source) {
            (Some(usd), Some(source)) => {
                *self.usd.get_or_insert(0.0) += usd;
                self.source = match self.source {
                    None => Some(source),
                    Some(s) if s == source => Some(s),
                    Some(_) => Some(CostSource::Mixed),
                };
            }
            _ => self.unknown += 1,
        }
    }
}

/// One model's prices, per token, in US dollars.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
pub(crate) struct Price {
    input_cost_per_token: Option<f64>,
    output_cost_per_token: Option<f64>,
    cache_read_input_token_cost: Option<f64>,
    output_cost_per_reasoning_token: Option<f64>,
    /// `LiteLLM`'s Batch API prices (`OpenAI` and Anthropic bill batches at half the rate); used
    /// for the answers of a provider batch when the table has them.
    input_cost_per_token_batches: Option<f64>,
    output_cost_per_token_batches: Option<f64>,
}

impl Price {
    /// The price of `usage`: uncached input at the input price, cached input at the cache-read
    /// price (else the input price), output at the output price, and the reasoning part of the
    /// output at the reasoning price when the table has one (reasoning tokens are output tokens).
    /// `None` when the table lacks the input or the output price.
    pub(crate) fn cost(&self, usage: &Usage) -> Option<f64> {
        let input = self.input_cost_per_token?;
        let output = self.output_cost_per_token?;
        let cached = u64::from(usage.cache_read_input_tokens).min(usage.input_tokens);
        let uncached = usage.input_tokens - cached;
        let cache_read = self.cache_read_input_token_cost.unwrap_or(input);
        let reasoning = usage.reasoning_tokens.unwrap_or(0).min(usage.output_tokens);
        let (reasoning_price, billed_reasoning) = match self.output_cost_per_reasoning_token {
            Some(p) => (p, reasoning),
            None => (output, 0),
        };
        let plain_output = usage.output_tokens - billed_reasoning;
        #[allow(
            clippy::cast_precision_loss,
            reason = "token counts are far below 2^52"
        )]
        let usd = uncached as f64 * input
            + cached as f64 * cache_read
            + plain_output as f64 * output
            + billed_reasoning as f64 * reasoning_price;
        usd.is_finite().then_some(usd)
    }

    /// The prices of a Batch API request: the batch input and output prices in place of the
    /// regular ones (cached input at the batch input price when the table's cache price is
    /// higher, reasoning at the batch output price); `None` when the table has no batch price for
    /// the model.
    fn batch(&self) -> Option<Self> {
        let input = self.input_cost_per_token_batches?;
        let output = self.output_cost_per_token_batches?;
        Some(Self {
            input_cost_per_token: Some(input),
            output_cost_per_token: Some(output),
            cache_read_input_token_cost: self.cache_read_input_token_cost.map(|c| c.min(input)),
            // Reasoning is output, billed at the batch output price.
            output_cost_per_reasoning_token: None,
            ..*self
        })
    }

    /// The most one request could cost: `prompt_tokens` of input and `max_output` of output.
    pub(crate) fn worst_case(&self, prompt_tokens: u64, max_output: u64) -> Option<f64> {
        let usage = Usage {
            input_tokens: prompt_tokens,
            output_tokens: max_output,
            total_tokens: prompt_tokens + max_output,
            ..Usage::default()
        };
        let price = Self {
            output_cost_per_reasoning_token: None,
            ..*self
        };
        price.cost(&usage)
    }
}

/// The most a request could cost at `price`: its messages' characters / 4 of input (the same
/// rough count the pacer uses) and its token limit (`max_tokens`, `max_completion_tokens`) of
/// output; `None` without a token limit, when the output is unbounded.
pub(crate) fn request_estimate(price: &Price, body: &Value) -> Option<f64> {
    let max_output = ["max_tokens", "max_completion_tokens"]
        .iter()
        .find_map(|k| body.get(*k)?.as_u64())?;
    let chars: usize = body
        .get("messages")
        .and_then(Value::as_array)
        .map_or(0, |messages| {
            messages
                .iter()
                .filter_map(|m| m.get("content"))
                .map(|c| c.as_str().map_or_else(|| c.to_string().len(), str::len))
                .sum()
        });
    price.worst_case((chars as u64).div_ceil(4), max_output)
}

/// The largest price file read (`LiteLLM`'s whole table is about 1.5 MB).
pub(crate) const MAX_PRICE_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// `--prices FILE`: `LiteLLM`'s `model_prices_and_context_window.json` as is: an object whose
/// keys are model names and whose values hold `input_cost_per_token`, `output_cost_per_token`,
/// `cache_read_input_token_cost` and `output_cost_per_reasoning_token` (US dollars per token).
/// Entries without a price (`sample_spec`, image models) are kept out.
#[derive(Debug, Clone, Default)]
pub(crate) struct PriceTable {
    by_model: HashMap<String, Price>,
}

impl PriceTable {
    /// Parse a price file's text. A file that is not a JSON object, or holds no priced model, is
    /// an error (a table that prices nothing would make every cost silently unknown).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("is not JSON ({e})"))?;
        let Value::Object(entries) = value else {
            return Err("is not a JSON object of models".to_owned());
        };
        let by_model: HashMap<String, Price> = entries
            .into_iter()
            .filter_map(|(model, entry)| {
                let price: Price = serde_json::from_value(entry).ok()?;
                let priced = [price.input_cost_per_token, price.output_cost_per_token]
                    .iter()
                    .all(|p| p.is_some_and(|p| p.is_finite() && p >= 0.0));
                priced.then_some((model, price))
            })
            .collect();
        if by_model.is_empty() {
            return Err(
                "prices no model (no entry has both input_cost_per_token and output_cost_per_token)"
                    .to_owned(),
            );
        }
        Ok(Self { by_model })
    }

    /// The prices of `model`: its own entry, else the entry of the name without its provider
    /// prefix (`openai/gpt-4o` → `gpt-4o`).
    pub(crate) fn get(&self, model: &str) -> Option<&Price> {
        self.by_model.get(model).or_else(|| {
            model
                .split_once('/')
                .and_then(|(_, bare)| self.by_model.get(bare))
        })
    }
}

/// `--max-budget-usd` in a batch: what was spent, the dearest job so far (the estimate of the
/// next one), and whether a job may start.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CostBudget {
    limit: Option<f64>,
    spent: f64,
    dearest: Option<f64>,
}

/// What the budget says about starting one more job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    Go,
    /// No job's cost is known yet and one is in flight: wait for it (its cost is the estimate).
    Wait,
    /// The next job could take the spending over the limit.
    Spent,
}

impl CostBudget {
    pub(crate) fn new(limit: Option<f64>) -> Self {
        Self {
            limit,
            ..Self::default()
        }
    }

    pub(crate) fn limit(&self) -> Option<f64> {
        self.limit
    }

    pub(crate) fn spent(&self) -> f64 {
        self.spent
    }

    /// Add what one finished job cost.
    pub(crate) fn add(&mut self, usd: f64) {
        self.spent += usd;
        self.dearest = Some(self.dearest.map_or(usd, |d| d.max(usd)));
    }

    /// Whether one more job may start while `in_flight` run: the spending so far, plus the
    /// estimate for each job in flight and for the new one, must stay within the limit. The
    /// estimate is the dearest job so far, or `request_estimate` (the new job's worst case from
    /// the price table) when that is higher. Until one job's cost is known, jobs go one at a time.
    pub(crate) fn gate(&self, in_flight: usize, request_estimate: Option<f64>) -> Gate {
        let Some(limit) = self.limit else {
            return Gate::Go;
        };
        let estimate = match (self.dearest, request_estimate) {
            (Some(d), Some(r)) => d.max(r),
            (Some(d), None) => d,
            (None, Some(r)) if in_flight == 0 => r,
            (None, _) if in_flight > 0 => return Gate::Wait,
            (None, _) => 0.0,
        };
        #[allow(clippy::cast_precision_loss, reason = "in-flight counts are small")]
        let committed = self.spent + estimate * (in_flight as f64 + 1.0);
        if self.spent >= limit || committed > limit {
            Gate::Spent
        } else {
            Gate::Go
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, cached: Option<u64>, output: u64, reasoning: Option<u64>) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            total_tokens: input + output,
            reasoning_tokens: reasoning,
            cache_read_input_tokens: cached.map_or(0, Usage::cache_count),
            ..Usage::default()
        }
    }

    const TABLE: &str = r#"{
        "sample_spec": {"max_tokens": "set to max_output_tokens if provider specifies it"},
        "gpt-4o": {"input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05,
                   "cache_read_input_token_cost": 1.25e-06, "litellm_provider": "openai"},
        "o3": {"input_cost_per_token": 2e-06, "output_cost_per_token": 8e-06},
        "thinker": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06,
                    "output_cost_per_reasoning_token": 3e-06},
        "dall-e-3": {"output_cost_per_image": 0.04}
    }"#;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn prices_follow_the_table_with_cached_and_reasoning_tokens() {
        let table = PriceTable::parse(TABLE).expect("parses");
        assert!(table.get("sample_spec").is_none() && table.get("dall-e-3").is_none());
        let cases = [
            // model, usage, expected dollars
            (
                "gpt-4o",
                usage(1000, None, 100, None),
                1000.0 * 2.5e-6 + 100.0 * 1e-5,
            ),
            (
                "gpt-4o",
                usage(1000, Some(400), 100, None),
                600.0 * 2.5e-6 + 400.0 * 1.25e-6 + 100.0 * 1e-5,
            ),
            // No cache price: cached input at the input price.
            (
                "o3",
                usage(1000, Some(400), 100, Some(60)),
                1000.0 * 2e-6 + 100.0 * 8e-6,
            ),
            // Reasoning billed as output, at its own price when the table has one.
            (
                "thinker",
                usage(10, None, 100, Some(60)),
                10.0 * 1e-6 + 40.0 * 2e-6 + 60.0 * 3e-6,
            ),
            ("openai/gpt-4o", usage(1, None, 0, None), 2.5e-6),
        ];
        for (model, u, want) in cases {
            let cost = Cost::of(None, Some(u), &[model], Some(&table));
            assert_eq!(cost.source, Some(CostSource::PriceTable), "{model}");
            assert!(
                close(cost.usd.expect("priced"), want),
                "{model}: {cost:?} != {want}"
            );
        }
    }

    #[test]
    fn batch_answers_use_the_batch_prices_else_the_regular_ones_said_so() {
        let table = PriceTable::parse(
            r#"{"gpt-4o": {"input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05,
                "cache_read_input_token_cost": 1.25e-06,
                "input_cost_per_token_batches": 1.25e-06, "output_cost_per_token_batches": 5e-06},
                "claude": {"input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05}}"#,
        )
        .expect("parses");
        let u = Some(usage(1000, Some(400), 100, Some(50)));
        let cases = [
            // model, provider figure, expected dollars, at the regular rate
            (
                "gpt-4o",
                None,
                Some(600.0 * 1.25e-6 + 400.0 * 1.25e-6 + 100.0 * 5e-6),
                false,
            ),
            ("claude", None, Some(1000.0 * 3e-6 + 100.0 * 1.5e-5), true),
            ("gpt-4o", Some(0.25), Some(0.25), false),
            ("unlisted", None, None, false),
        ];
        for (model, provider, want, regular) in cases {
            let got = BatchCost::of(provider, u, &[model], Some(&table));
            assert_eq!(got.regular_rate, regular, "{model}");
            match (got.cost.usd, want) {
                (Some(a), Some(b)) => assert!(close(a, b), "{model}: {a} != {b}"),
                (a, b) => assert_eq!(a, b, "{model}"),
            }
        }
        assert_eq!(
            BatchCost::of(None, u, &["gpt-4o"], None),
            BatchCost::default()
        );
    }

    #[test]
    fn the_provider_figure_wins_and_unknown_is_never_zero() {
        let table = PriceTable::parse(TABLE).expect("parses");
        let u = Some(usage(10, None, 10, None));
        assert_eq!(
            Cost::of(Some(0.5), u, &["gpt-4o"], Some(&table)),
            Cost::known(0.5, CostSource::Provider)
        );
        assert_eq!(
            Cost::of(None, u, &["unlisted"], Some(&table)),
            Cost::default()
        );
        assert_eq!(Cost::of(None, u, &["gpt-4o"], None), Cost::default());
        assert_eq!(
            Cost::of(None, None, &["gpt-4o"], Some(&table)),
            Cost::default()
        );
    }

    #[test]
    fn a_file_that_prices_nothing_is_refused() {
        for text in ["[]", "{}", r#"{"sample_spec": {}}"#, "not json"] {
            assert!(PriceTable::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn totals_say_where_they_came_from_and_count_the_unknown() {
        let mut t = CostTotal::default();
        assert_eq!(t.usd, None);
        t.add(Cost::known(0.25, CostSource::Provider));
        t.add(Cost::default());
        assert_eq!(
            (t.usd, t.source, t.unknown),
            (Some(0.25), Some(CostSource::Provider), 1)
        );
        t.add(Cost::known(0.5, CostSource::PriceTable));
        assert_eq!((t.usd, t.source), (Some(0.75), Some(CostSource::Mixed)));
    }

    #[test]
    fn the_budget_gate_keeps_the_next_jobs_within_the_limit() {
        let mut b = CostBudget::new(Some(1.0));
        assert_eq!(b.gate(0, None), Gate::Go, "the first job probes the price");
        assert_eq!(b.gate(1, None), Gate::Wait, "the rest wait for it");
        b.add(0.1);
        // 0.1 spent, 0.1 per job: 8 in flight + 1 more = 1.0.
        assert_eq!(b.gate(8, None), Gate::Go);
        assert_eq!(b.gate(9, None), Gate::Spent);
        // A request the table says could cost more is counted at that.
        assert_eq!(b.gate(0, Some(0.95)), Gate::Spent);
        assert_eq!(CostBudget::new(None).gate(1000, None), Gate::Go);
    }
}
