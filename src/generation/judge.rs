//! The plausibility judge: an interpolated Kneser–Ney character n-gram, fitted on the training
//! split only, independent of any model it judges.
//!
//! Items are read as makemore's models read them: `order − 1` start tokens, the characters, the
//! end token (token 0 serves as both). At the top order the counts are the n-grams' own; below
//! it, continuation counts (how many different tokens precede the lower-order n-gram), the idea
//! that makes Kneser–Ney better than plain back-off (Chen & Goodman 1998, §3).

use std::collections::HashMap;

/// Subtracted from every count: the usual fixed discount (Chen & Goodman's D for counts ≥ 1 is
/// close to it on text). It leaves every seen context mass for the lower orders, so no token
/// ever has probability 0.
pub const DISCOUNT: f64 = 0.75;

/// What followed one context, at one order.
#[derive(Debug, Default, Clone)]
struct Followers {
    counts: HashMap<usize, f64>,
    total: f64,
}

impl Followers {
    fn add(&mut self, token: usize, count: f64) {
        *self.counts.entry(token).or_default() += count;
        self.total += count;
    }
}

/// An n-gram of `order` characters over a vocabulary of `vocab` tokens (the end token included).
#[derive(Debug, Clone)]
pub struct Judge {
    order: usize,
    vocab: usize,
    /// `levels[k]`: the context of `k` tokens → what followed it (raw counts at the top level,
    /// continuation counts below).
    levels: Vec<HashMap<Vec<usize>, Followers>>,
}

impl Judge {
    /// Fits the n-gram on `items` (tokens without start or end) over `vocab` tokens.
    pub fn fit(items: &[Vec<usize>], vocab: usize, order: usize) -> Judge {
        assert!(order >= 1, "an n-gram has at least one character");
        let mut levels = vec![HashMap::<Vec<usize>, Followers>::new(); order];
        let top = order - 1;
        for item in items {
            let padded = padded(item, order);
            for window in padded.windows(order) {
                let (context, next) = window.split_at(top);
                levels[top]
                    .entry(context.to_vec())
                    .or_default()
                    .add(next[0], 1.0);
            }
        }
        // Each distinct n-gram of level k + 1 gives its lower n-gram (its context without the
        // first token) one continuation.
        for k in (0..top).rev() {
            let mut lower = HashMap::<Vec<usize>, Followers>::new();
            for (context, followers) in &levels[k + 1] {
                for &next in followers.counts.keys() {
                    lower
                        .entry(context[1..].to_vec())
                        .or_default()
                        .add(next, 1.0);
                }
            }
            levels[k] = lower;
        }
        Judge {
            order,
            vocab,
            levels,
        }
    }

    /// The probability of `next` after `history` (the tokens before it, start tokens included;
    /// only the last `order − 1` count).
    pub fn probability(&self, history: &[usize], next: usize) -> f64 {
        let context = &history[history.len().saturating_sub(self.order - 1)..];
        self.at_level(context, next)
    }

    /// P_k(next | context), `k` = the context's length: the discounted count plus the mass the
    /// discount freed, spread as the next lower order; below the unigram, uniform.
    fn at_level(&self, context: &[usize], next: usize) -> f64 {
        let lower = || match context.is_empty() {
            true => 1.0 / self.vocab as f64,
            false => self.at_level(&context[1..], next),
        };
        let Some(followers) = self.levels[context.len()].get(context) else {
            return lower();
        };
        let count = followers.counts.get(&next).copied().unwrap_or(0.0);
        let kinds = followers.counts.len() as f64;
        (count - DISCOUNT).max(0.0) / followers.total + DISCOUNT * kinds / followers.total * lower()
    }

    /// The item's negative log-probability in nats, its end token included.
    pub fn nats(&self, item: &[usize]) -> f64 {
        let padded = padded(item, self.order);
        (self.order - 1..padded.len())
            .map(|i| -self.probability(&padded[..i], padded[i]).ln())
            .sum()
    }
}

/// `order − 1` start tokens, the item, the end token.
fn padded(item: &[usize], order: usize) -> Vec<usize> {
    let mut padded = vec![0; order - 1];
    padded.extend_from_slice(item);
    padded.push(0);
    padded
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: usize = 1;
    const B: usize = 2;

    /// The corpus "ab", "b" over {end, a, b}, at order 2, by hand (D = 3/4).
    ///
    /// Bigrams with the start/end token 0: (0,a) 1, (a,b) 1, (b,0) 2, (0,b) 1.
    /// Continuation counts of the unigrams (distinct tokens before each): a ← {0}: 1,
    /// b ← {a, 0}: 2, end ← {b}: 1; 4 in all, 3 kinds.
    /// P1(w) = max(N(w) − D, 0)/4 + D·3/4 · 1/3: P1(a) = 1/4, P1(b) = 1/2, P1(end) = 1/4.
    /// After a (1 bigram, 1 kind): P(b|a) = (1 − D)/1 + D·1/1·P1(b) = 1/4 + 3/8 = 5/8,
    /// P(a|a) = P(end|a) = D·P1 = 3/16.
    /// After the start (2 bigrams, 2 kinds): P(a|0) = (1 − D)/2 + D·2/2·P1(a) = 1/8 + 3/16 = 5/16.
    /// After b (2 bigrams, 1 kind): P(end|b) = (2 − D)/2 + D·1/2·P1(end) = 5/8 + 3/32 = 23/32.
    #[test]
    fn kneser_ney_by_hand() {
        let judge = Judge::fit(&[vec![A, B], vec![B]], 3, 2);
        let near = |got: f64, expected: f64| {
            assert!((got - expected).abs() < 1e-12, "{got} vs {expected}")
        };
        near(judge.probability(&[A], B), 5.0 / 8.0);
        near(judge.probability(&[A], A), 3.0 / 16.0);
        near(judge.probability(&[A], 0), 3.0 / 16.0);
        near(judge.probability(&[0], A), 5.0 / 16.0);
        near(judge.probability(&[B], 0), 23.0 / 32.0);
        // "ab": start → a → b → end.
        let expected = -(5.0f64 / 16.0 * 5.0 / 8.0 * 23.0 / 32.0).ln();
        near(judge.nats(&[A, B]), expected);
        // An unseen context backs off to the unigram whole: P(a | a a) at order 3.
        let judge = Judge::fit(&[vec![A, B], vec![B]], 3, 3);
        let unigram = Judge::fit(&[vec![A, B], vec![B]], 3, 1);
        near(judge.at_level(&[A, A], B), judge.at_level(&[A], B));
        // Order 1 counts raw unigrams: a 1, b 2, end 2 of 5, 3 kinds.
        near(
            unigram.probability(&[], B),
            (2.0 - 0.75) / 5.0 + 0.75 * 3.0 / 5.0 / 3.0,
        );
    }

    /// Every context's distribution sums to 1 over the vocabulary, seen or not, at every order.
    #[test]
    fn each_distribution_sums_to_one() {
        let items = [vec![1, 2, 3], vec![2, 2], vec![3, 1, 1, 2], vec![4]];
        for order in 1..=4 {
            let judge = Judge::fit(&items, 6, order);
            for history in [vec![0, 0, 0], vec![0, 1, 2], vec![2, 2, 2], vec![5, 5, 5]] {
                let total: f64 = (0..6).map(|next| judge.probability(&history, next)).sum();
                assert!((total - 1.0).abs() < 1e-12, "order {order}: {total}");
            }
        }
    }
}
