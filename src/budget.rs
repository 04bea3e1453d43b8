//! `--max-total-tokens`: the batch's token budget, counted from the usage servers report.

/// Counts the tokens a batch has used; `exhausted` once they reach the limit.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TokenBudget {
    limit: Option<u64>,
    used: u64,
}

impl TokenBudget {
    pub(crate) fn new(limit: Option<u64>) -> Self {
        Self { limit, used: 0 }
    }

    /// Add what one finished job reported (`total_tokens`).
    pub(crate) fn add(&mut self, tokens: u64) {
        self.used = self.used.saturating_add(tokens);
    }

    pub(crate) fn used(&self) -> u64 {
        self.used
    }

    pub(crate) fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// No new job may start: the reported usage reached the limit.
    pub(crate) fn exhausted(&self) -> bool {
        self.limit.is_some_and(|limit| self.used >= limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exhausted_once_usage_reaches_the_limit() {
        let mut b = TokenBudget::new(Some(100));
        assert!(!b.exhausted());
        b.add(99);
        assert!(!b.exhausted());
        b.add(1);
        assert!(b.exhausted());
        assert_eq!(b.used(), 100);
        let mut unlimited = TokenBudget::new(None);
        unlimited.add(u64::MAX);
        unlimited.add(5);
        assert!(!unlimited.exhausted());
        assert_eq!(unlimited.used(), u64::MAX);
    }
}
