//! makemore.py's models written out again with plain loops over its state_dict (its names, its
//! `[out, in]` Linear weights), independent of burn and of our model code: the yardstick for
//! what `export` writes and `import` reads.

use std::collections::HashMap;

pub type StateDict = HashMap<String, (Vec<usize>, Vec<f32>)>;

/// makemore.py's parameters (not its buffers) for a model of `kind`: vocabulary `v`, block size
/// `t`, widths `e` (n_embd) and `e2` (n_embd2), `layers` Transformer blocks.
pub fn parameter_shapes(
    kind: &str,
    v: usize,
    t: usize,
    e: usize,
    e2: usize,
    layers: usize,
) -> Vec<(String, Vec<usize>)> {
    let linear = |name: &str, d_in: usize, d_out: usize| {
        vec![
            (format!("{name}.weight"), vec![d_out, d_in]),
            (format!("{name}.bias"), vec![d_out]),
        ]
    };
    let mut shapes = match kind {
        "bigram" => vec![("logits".into(), vec![v, v])],
        "mlp" => [
            vec![("wte.weight".into(), vec![v + 1, e])],
            linear("mlp.0", t * e, e2),
            linear("mlp.2", e2, v),
        ]
        .concat(),
        "rnn" | "gru" => {
            let cells: &[&str] = if kind == "rnn" {
                &["xh_to_h"]
            } else {
                &["xh_to_z", "xh_to_r", "xh_to_hbar"]
            };
            let mut s = vec![
                ("start".into(), vec![1, e2]),
                ("wte.weight".into(), vec![v, e]),
            ];
            for cell in cells {
                s.extend(linear(&format!("cell.{cell}"), e + e2, e2));
            }
            s.extend(linear("lm_head", e2, v));
            s
        }
        "bow" => [
            vec![
                ("wte.weight".into(), vec![v, e]),
                ("wpe.weight".into(), vec![t, e]),
            ],
            linear("context_block.mlp.c_fc", e, e2),
            linear("context_block.mlp.c_proj", e2, e),
            linear("lm_head", e, v),
        ]
        .concat(),
        "transformer" => {
            let mut s = vec![
                ("transformer.wte.weight".into(), vec![v, e]),
                ("transformer.wpe.weight".into(), vec![t, e]),
                ("transformer.ln_f.weight".into(), vec![e]),
                ("transformer.ln_f.bias".into(), vec![e]),
                ("lm_head.weight".into(), vec![v, e]),
            ];
            for i in 0..layers {
                let h = format!("transformer.h.{i}");
                for ln in ["ln_1", "ln_2"] {
                    s.push((format!("{h}.{ln}.weight"), vec![e]));
                    s.push((format!("{h}.{ln}.bias"), vec![e]));
                }
                s.extend(linear(&format!("{h}.attn.c_attn"), e, 3 * e));
                s.extend(linear(&format!("{h}.attn.c_proj"), e, e));
                s.extend(linear(&format!("{h}.mlp.c_fc"), e, 4 * e));
                s.extend(linear(&format!("{h}.mlp.c_proj"), 4 * e, e));
            }
            s
        }
        other => panic!("no reference for {other}"),
    };
    shapes.sort();
    shapes
}

/// makemore.py's causal-mask buffers: in its state_dict, but not parameters.
pub fn buffer_shapes(kind: &str, t: usize, layers: usize) -> Vec<(String, Vec<usize>)> {
    match kind {
        "transformer" => (0..layers)
            .map(|i| (format!("transformer.h.{i}.attn.bias"), vec![1, 1, t, t]))
            .collect(),
        "bow" => vec![("context_block.cbow.bias".into(), vec![1, t, t])],
        _ => Vec::new(),
    }
}

/// Logits `[T][V]` of makemore.py's model of `kind` for one input row `tokens`.
pub fn forward(kind: &str, w: &StateDict, n_head: usize, tokens: &[usize]) -> Vec<Vec<f32>> {
    let row = |name: &str, i: usize| -> Vec<f32> {
        let (shape, values) = &w[name];
        values[i * shape[1]..(i + 1) * shape[1]].to_vec()
    };
    let linear = |name: &str, x: &[f32]| -> Vec<f32> {
        let (shape, weight) = &w[&format!("{name}.weight")];
        let (d_out, d_in) = (shape[0], shape[1]);
        assert_eq!(d_in, x.len(), "{name}");
        let bias = w.get(&format!("{name}.bias")).map(|(_, b)| b);
        (0..d_out)
            .map(|o| {
                let dot: f32 = (0..d_in).map(|i| weight[o * d_in + i] * x[i]).sum();
                dot + bias.map_or(0.0, |b| b[o])
            })
            .collect()
    };
    let t = tokens.len();
    match kind {
        "bigram" => tokens.iter().map(|&tok| row("logits", tok)).collect(),
        "mlp" => {
            let blank = w["wte.weight"].0[0] - 1;
            let context = w["mlp.0.weight"].0[1] / w["wte.weight"].0[1];
            (0..t)
                .map(|p| {
                    let x: Vec<f32> = (0..context)
                        .flat_map(|k| row("wte.weight", if p >= k { tokens[p - k] } else { blank }))
                        .collect();
                    linear("mlp.2", &tanh(&linear("mlp.0", &x)))
                })
                .collect()
        }
        "rnn" | "gru" => {
            let mut h = row("start", 0);
            let mut out = Vec::new();
            for &tok in tokens {
                let x = row("wte.weight", tok);
                let xh = [x.clone(), h.clone()].concat();
                h = if kind == "rnn" {
                    tanh(&linear("cell.xh_to_h", &xh))
                } else {
                    let r = sigmoid(&linear("cell.xh_to_r", &xh));
                    let reset: Vec<f32> = r.iter().zip(&h).map(|(r, h)| r * h).collect();
                    let hbar = tanh(&linear("cell.xh_to_hbar", &[x, reset].concat()));
                    let z = sigmoid(&linear("cell.xh_to_z", &xh));
                    (0..h.len())
                        .map(|i| (1.0 - z[i]) * h[i] + z[i] * hbar[i])
                        .collect()
                };
                out.push(linear("lm_head", &h));
            }
            out
        }
        "bow" => {
            let x: Vec<Vec<f32>> = (0..t)
                .map(|p| add(&row("wte.weight", tokens[p]), &row("wpe.weight", p)))
                .collect();
            (0..t)
                .map(|p| {
                    let mean = scale(
                        &x[..=p]
                            .iter()
                            .fold(vec![0.0; x[p].len()], |a, b| add(&a, b)),
                        1.0 / (p + 1) as f32,
                    );
                    let x = add(&x[p], &mean);
                    let mlp = linear(
                        "context_block.mlp.c_proj",
                        &tanh(&linear("context_block.mlp.c_fc", &x)),
                    );
                    linear("lm_head", &add(&x, &mlp))
                })
                .collect()
        }
        "transformer" => {
            let layer_norm = |name: &str, x: &[f32]| -> Vec<f32> {
                let n = x.len() as f32;
                let mean = x.iter().sum::<f32>() / n;
                let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
                let (g, b) = (
                    &w[&format!("{name}.weight")].1,
                    &w[&format!("{name}.bias")].1,
                );
                (0..x.len())
                    .map(|i| (x[i] - mean) / (var + 1e-5).sqrt() * g[i] + b[i])
                    .collect()
            };
            let mut x: Vec<Vec<f32>> = (0..t)
                .map(|p| {
                    add(
                        &row("transformer.wte.weight", tokens[p]),
                        &row("transformer.wpe.weight", p),
                    )
                })
                .collect();
            let e = x[0].len();
            let hs = e / n_head;
            let mut layer = 0;
            while w.contains_key(&format!("transformer.h.{layer}.ln_1.weight")) {
                let h = format!("transformer.h.{layer}");
                let qkv: Vec<Vec<f32>> = x
                    .iter()
                    .map(|xp| {
                        linear(
                            &format!("{h}.attn.c_attn"),
                            &layer_norm(&format!("{h}.ln_1"), xp),
                        )
                    })
                    .collect();
                for p in 0..t {
                    let mut y = vec![0.0; e];
                    for head in 0..n_head {
                        let q = &qkv[p][head * hs..(head + 1) * hs];
                        let scores: Vec<f32> = (0..=p)
                            .map(|s| {
                                let k = &qkv[s][e + head * hs..e + (head + 1) * hs];
                                q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>()
                                    / (hs as f32).sqrt()
                            })
                            .collect();
                        let att = softmax(&scores);
                        for (s, a) in att.iter().enumerate() {
                            for i in 0..hs {
                                y[head * hs + i] += a * qkv[s][2 * e + head * hs + i];
                            }
                        }
                    }
                    let attended = add(&x[p], &linear(&format!("{h}.attn.c_proj"), &y));
                    let hidden = gelu(&linear(
                        &format!("{h}.mlp.c_fc"),
                        &layer_norm(&format!("{h}.ln_2"), &attended),
                    ));
                    x[p] = add(&attended, &linear(&format!("{h}.mlp.c_proj"), &hidden));
                }
                layer += 1;
            }
            x.iter()
                .map(|xp| linear("lm_head", &layer_norm("transformer.ln_f", xp)))
                .collect()
        }
        other => panic!("no reference for {other}"),
    }
}

fn add(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(a, b)| a + b).collect()
}

fn scale(a: &[f32], s: f32) -> Vec<f32> {
    a.iter().map(|a| a * s).collect()
}

fn tanh(x: &[f32]) -> Vec<f32> {
    x.iter().map(|v| v.tanh()).collect()
}

fn sigmoid(x: &[f32]) -> Vec<f32> {
    x.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect()
}

fn softmax(x: &[f32]) -> Vec<f32> {
    let max = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = x.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.iter().map(|v| v / sum).collect()
}

/// makemore.py's NewGELU: the tanh approximation.
fn gelu(x: &[f32]) -> Vec<f32> {
    let c = (2.0 / std::f32::consts::PI).sqrt();
    x.iter()
        .map(|v| 0.5 * v * (1.0 + (c * (v + 0.044715 * v * v * v)).tanh()))
        .collect()
}
