//! Recurrent models: makemore.py's scaffolding (a learned start state, token embeddings, a cell
//! applied along the sequence, an output head) with its RNN and GRU cells, and an LSTM cell after
//! Graves (2013).

use std::ops::Range;

use burn::module::Param;
use burn::nn::{Embedding, Linear};
use burn::prelude::*;

use super::init::Init;
use super::{dense, per_token_tables, sigmoid, tanh};
use crate::config::{ModelConfig, ModelType};

#[derive(Module, Debug)]
pub struct Recurrent<B: Backend> {
    /// The hidden state before the first token (for the LSTM, the cell state follows it).
    start: Param<Tensor<B, 2>>,
    wte: Embedding<B>,
    cell: Cell<B>,
    lm_head: Linear<B>,
}

// One cell per model: the size gap between variants is not worth boxing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
enum Cell<B: Backend> {
    Rnn(RnnCell<B>),
    Gru(GruCell<B>),
    Lstm(LstmCell<B>),
}

/// h' = tanh(W [x, h])
#[derive(Module, Debug)]
struct RnnCell<B: Backend> {
    xh_to_h: Linear<B>,
}

/// makemore.py's GRU: a reset gate r, an update gate z and a candidate from [x, r ⊙ h].
#[derive(Module, Debug)]
struct GruCell<B: Backend> {
    xh_to_z: Linear<B>,
    xh_to_r: Linear<B>,
    xh_to_hbar: Linear<B>,
}

/// Input, forget and output gates and the candidate, from one projection of [x, h]; the state
/// is the hidden state and the cell's memory side by side.
#[derive(Module, Debug)]
struct LstmCell<B: Backend> {
    xh_to_gates: Linear<B>,
}

impl<B: Backend> Recurrent<B> {
    pub fn new(config: &ModelConfig, vocab_size: usize, init: &mut Init<B>) -> Self {
        let (x, h) = (config.n_embd, config.n_embd2);
        let cell = match config.kind {
            ModelType::Rnn => Cell::Rnn(RnnCell {
                xh_to_h: init.linear(x + h, h, true),
            }),
            ModelType::Gru => Cell::Gru(GruCell {
                xh_to_z: init.linear(x + h, h, true),
                xh_to_r: init.linear(x + h, h, true),
                xh_to_hbar: init.linear(x + h, h, true),
            }),
            ModelType::Lstm => Cell::Lstm(LstmCell {
                xh_to_gates: lstm_gates(init, x + h, h),
            }),
            other => unreachable!("{other:?} is not recurrent"),
        };
        let state = if matches!(cell, Cell::Lstm(_)) {
            2 * h
        } else {
            h
        };
        Recurrent {
            start: init.constant([1, state], 0.0),
            wte: init.embedding(vocab_size, x),
            cell,
            lm_head: init.linear(h, vocab_size, true),
        }
    }

    pub fn forward(&self, idx: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let [b, t] = idx.dims();
        let projections = self.cell.projections(self.wte.weight.val(), b * t);
        let idx = idx.swap_dims(0, 1); // time-major: each step's tokens lie together
        let mut state = self.start.val().expand([b as i64, -1]);
        let mut hiddens = Vec::with_capacity(t);
        for i in 0..t {
            let tokens = idx.clone().slice([i..i + 1, 0..b]).reshape([b]);
            state = self.cell.step(&projections, tokens, state);
            hiddens.push(self.cell.hidden(state.clone()));
        }
        dense(&self.lm_head, Tensor::stack(hiddens, 1))
    }
}

/// What `Recurrent::decode` carries from one position to the next.
pub struct Carried<B: Backend> {
    projections: Projections<B>,
    state: Tensor<B, 2>,
}

impl<B: Backend> Recurrent<B> {
    /// One position of `forward`: the next-token logits `[count, V]` after `tokens` `[count]`,
    /// from the state `carried` holds (the start state where it holds none), which then holds
    /// the new one. The token tables are made once, for a batch of `count` positions.
    pub fn decode(
        &self,
        tokens: Tensor<B, 1, Int>,
        carried: &mut Option<Carried<B>>,
    ) -> Tensor<B, 2> {
        let [count] = tokens.dims();
        let Carried { projections, state } = carried.take().unwrap_or_else(|| Carried {
            projections: self.cell.projections(self.wte.weight.val(), count),
            state: self.start.val().expand([count as i64, -1]),
        });
        let state = self.cell.step(&projections, tokens, state);
        let logits = dense(&self.lm_head, self.cell.hidden(state.clone()));
        *carried = Some(Carried { projections, state });
        logits
    }
}

/// A cell's projections of [x, h] split in two: the input's share and the weights the state
/// meets at each step. The input's share of every token is computed once, as a table that each
/// step looks its rows up in, or (see `per_token_tables`) each step multiplies its own
/// embeddings. Either way no step concatenates [x, h], and each step's backward pass stays as
/// small as its forward pass.
struct Projections<B: Backend> {
    from_token: Vec<TokenShare<B>>,
    /// `[n_embd2, width]` each.
    from_state: Vec<Tensor<B, 2>>,
}

enum TokenShare<B: Backend> {
    /// `[vocab, width]`, the bias included.
    Table(Tensor<B, 2>),
    /// The embeddings `[vocab, n_embd]`, the input's weights `[n_embd, width]` and the bias.
    Product(Tensor<B, 2>, Tensor<B, 2>, Tensor<B, 1>),
}

impl<B: Backend> Projections<B> {
    /// Projection `k` of the step's `tokens` `[B]` and `state`.
    fn project(&self, k: usize, tokens: Tensor<B, 1, Int>, state: Tensor<B, 2>) -> Tensor<B, 2> {
        let from_token = match &self.from_token[k] {
            TokenShare::Table(table) => table.clone().select(0, tokens),
            TokenShare::Product(embeddings, weights, bias) => {
                let x = embeddings.clone().select(0, tokens);
                x.matmul(weights.clone()) + bias.clone().unsqueeze()
            }
        };
        from_token + state.matmul(self.from_state[k].clone())
    }
}

/// The input's share and the state's weights of one or more `[x, h]` projections side by side,
/// for a batch of `positions` positions.
fn split<B: Backend>(
    embeddings: &Tensor<B, 2>,
    linears: &[&Linear<B>],
    positions: usize,
) -> (TokenShare<B>, Tensor<B, 2>) {
    let [tokens, x_dim] = embeddings.dims();
    let weights = |rows: fn(usize, usize) -> Range<usize>| {
        let parts = linears
            .iter()
            .map(|l| {
                let [d_in, _] = l.weight.dims();
                l.weight.val().slice([rows(x_dim, d_in)])
            })
            .collect();
        Tensor::cat(parts, 1)
    };
    let bias = Tensor::cat(
        linears
            .iter()
            .map(|l| l.bias.as_ref().expect("cells have biases").val())
            .collect(),
        0,
    );
    let from_input = weights(|x, _| 0..x);
    let from_token = if per_token_tables(tokens, positions) {
        TokenShare::Table(embeddings.clone().matmul(from_input) + bias.unsqueeze())
    } else {
        TokenShare::Product(embeddings.clone(), from_input, bias)
    };
    (from_token, weights(|x, d_in| x..d_in))
}

/// The LSTM's four gate projections (input, forget, output, candidate), drawn as PyTorch's
/// `nn.LSTM` draws them, U(-1/√h, 1/√h) with h the state size, and then biased to open the input
/// and output gates (+1, +2) and to forget quickly (−1) at the start: with plain `nn.LSTM` gates
/// the hidden state reaching the head is half the memory's tanh, and short items need little
/// memory. (BENCHMARKS.md, "The LSTM's gate biases", compares them with plain gates and with a
/// forget-gate bias of +1 alone.)
fn lstm_gates<B: Backend>(init: &mut Init<B>, d_in: usize, h: usize) -> Linear<B> {
    const GATE_BIAS: [f32; 4] = [1.0, -1.0, 2.0, 0.0];
    let bound = 1.0 / (h as f64).sqrt();
    let weight = init.uniform([d_in, 4 * h], bound);
    let bias = init
        .uniform_values(4 * h, bound)
        .into_iter()
        .enumerate()
        .map(|(i, b)| b + GATE_BIAS[i / h])
        .collect();
    Linear {
        weight,
        bias: Some(init.param(bias, [4 * h])),
    }
}

impl<B: Backend> Cell<B> {
    /// Every projection split for a batch of `positions` positions.
    fn projections(&self, embeddings: Tensor<B, 2>, positions: usize) -> Projections<B> {
        let groups: Vec<Vec<&Linear<B>>> = match self {
            Cell::Rnn(c) => vec![vec![&c.xh_to_h]],
            // z and r read the same [x, h]; the candidate reads [x, r ⊙ h].
            Cell::Gru(c) => vec![vec![&c.xh_to_z, &c.xh_to_r], vec![&c.xh_to_hbar]],
            Cell::Lstm(c) => vec![vec![&c.xh_to_gates]],
        };
        let (from_token, from_state) = groups
            .iter()
            .map(|g| split(&embeddings, g, positions))
            .unzip();
        Projections {
            from_token,
            from_state,
        }
    }

    /// The state after a step that reads `tokens` `[B]`.
    fn step(
        &self,
        projections: &Projections<B>,
        tokens: Tensor<B, 1, Int>,
        state: Tensor<B, 2>,
    ) -> Tensor<B, 2> {
        let [b, width] = state.dims();
        match self {
            Cell::Rnn(_) => tanh(projections.project(0, tokens, state)),
            Cell::Gru(_) => {
                let h = width;
                let zr = sigmoid(projections.project(0, tokens.clone(), state.clone()));
                let (z, r) = (zr.clone().slice([0..b, 0..h]), zr.slice([0..b, h..2 * h]));
                let hbar = tanh(projections.project(1, tokens, r * state.clone()));
                (z.clone().neg() + 1.0) * state + z * hbar
            }
            Cell::Lstm(_) => {
                let h = width / 2;
                let (hidden, memory) = (
                    state.clone().slice([0..b, 0..h]),
                    state.slice([0..b, h..2 * h]),
                );
                let gates = projections.project(0, tokens, hidden);
                let gate = |k: usize| gates.clone().slice([0..b, k * h..(k + 1) * h]);
                let (input, forget, output, candidate) = (
                    sigmoid(gate(0)),
                    sigmoid(gate(1)),
                    sigmoid(gate(2)),
                    tanh(gate(3)),
                );
                let memory = forget * memory + input * candidate;
                let hidden = output * tanh(memory.clone());
                Tensor::cat(vec![hidden, memory], 1)
            }
        }
    }

    /// The part of the state the output head reads.
    fn hidden(&self, state: Tensor<B, 2>) -> Tensor<B, 2> {
        match self {
            Cell::Lstm(_) => {
                let [b, two_h] = state.dims();
                state.slice([0..b, 0..two_h / 2])
            }
            _ => state,
        }
    }
}
