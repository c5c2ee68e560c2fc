//! Generating one position at a time: what a model carries from each new token to the next, so
//! that a token costs the same however long the prefix before it. The Transformer keeps each
//! layer's keys and values, the recurrent families their state, the bag of words its running
//! sum, and the mlp reads the window of its context: each computes only the new position. The
//! bigram reads the last token; the cnn runs its forward pass over the window it reads.

use burn::prelude::*;

use super::{Mode, Model, recurrent, transformer};

/// A model's memory of the positions fed so far, for `Decoder::next`.
pub struct Decoder<B: Backend> {
    /// How many positions were fed.
    t: usize,
    carried: Carried<B>,
}

enum Carried<B: Backend> {
    Keys(Vec<transformer::Cache<B>>),
    State(Option<recurrent::Carried<B>>),
    /// The bag of words' sum of the embeddings so far.
    Sum(Option<Tensor<B, 2>>),
    /// The last `window` tokens of each sequence.
    Tokens {
        rows: Vec<Vec<i32>>,
        window: usize,
    },
}

impl<B: Backend> Model<B> {
    /// A decoder at position 0, for this model only.
    pub fn decoder(&self) -> Decoder<B> {
        let tokens = |window| Carried::Tokens {
            rows: Vec::new(),
            window,
        };
        let carried = match self {
            Model::Transformer(_) => Carried::Keys(Vec::new()),
            Model::Recurrent(_) => Carried::State(None),
            Model::Bigram(_) => tokens(1),
            Model::Bow(_) => Carried::Sum(None),
            Model::Mlp(m) => tokens(m.block_size()),
            Model::Cnn(m) => tokens(m.context()),
        };
        Decoder { t: 0, carried }
    }
}

impl<B: Backend> Decoder<B> {
    /// The next-token logits `[count, V]` after `tokens`, one per sequence: what `model.forward`
    /// gives at this position of the sequences fed so far.
    pub fn next(&mut self, model: &Model<B>, tokens: &[i32], device: &B::Device) -> Tensor<B, 2> {
        let t = self.t;
        self.t += 1;
        let count = tokens.len();
        let column = || Tensor::from_data(TensorData::new(tokens.to_vec(), [count]), device);
        match (model, &mut self.carried) {
            (Model::Transformer(m), Carried::Keys(caches)) => m.decode(column(), t, caches),
            (Model::Recurrent(m), Carried::State(carried)) => m.decode(column(), carried),
            (Model::Bow(m), Carried::Sum(sum)) => m.decode(column(), t, sum),
            (model, Carried::Tokens { rows, window }) => {
                rows.resize_with(count, Vec::new);
                for (row, &token) in rows.iter_mut().zip(tokens) {
                    row.push(token);
                    if row.len() > *window {
                        row.remove(0);
                    }
                }
                let w = rows[0].len();
                let flat: Vec<i32> = rows.iter().flatten().copied().collect();
                let idx = Tensor::from_data(TensorData::new(flat, [count, w]), device);
                if let Model::Mlp(m) = model {
                    return m.decode(idx);
                }
                let logits = model.forward(idx, Mode::Eval);
                let [_, _, v] = logits.dims();
                logits.slice([0..count, w - 1..w, 0..v]).reshape([count, v])
            }
            _ => unreachable!("a decoder is made by its model"),
        }
    }
}
