//! `makemore export` and `makemore import`: checkpoints to and from makemore.py, checked against
//! makemore.py's models written out independently (`common::reference`), without PyTorch.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use common::reference::{self, StateDict};
use common::{NAMES, makemore, stderr, torch};
use makemore::models::Mode;
use makemore::trained::{Trained, Which};

type B = burn::backend::Flex;

const FAMILIES: [&str; 6] = ["bigram", "mlp", "rnn", "gru", "bow", "transformer"];
/// The sizes of `common::experiment`.
const SIZES: [&str; 5] = [
    "model.n_embd=8",
    "model.n_embd2=16",
    "model.n_layer=2",
    "model.n_head=2",
    "dataset.test_size=4",
];
const ITEMS: [&str; 3] = ["emma", "sebastian", "x"];

/// Vocabulary size and block size of `common::NAMES`.
fn names_dims() -> (usize, usize) {
    let chars: BTreeSet<char> = NAMES.iter().flat_map(|n| n.chars()).collect();
    let longest = NAMES.iter().map(|n| n.len()).max().unwrap();
    (chars.len() + 1, longest + 1)
}

/// Input rows (start token, item, padding) for `ITEMS`, and our model's logits for them.
fn our_logits(run: &Path) -> (Vec<Vec<usize>>, Vec<f32>) {
    let trained = Trained::open(run, Which::Best).unwrap();
    let data = &trained.data;
    let items: Vec<Vec<usize>> = ITEMS
        .iter()
        .map(|i| data.vocab.encode(i).unwrap())
        .collect();
    let rows: Vec<&[usize]> = items.iter().map(Vec::as_slice).collect();
    let (x, _) = makemore::data::batch::<B>(&rows, data.seq_len, &Default::default());
    let inputs: Vec<i64> = x.to_data().convert::<i64>().to_vec().unwrap();
    let inputs = inputs
        .chunks(data.seq_len)
        .map(|row| row.iter().map(|&t| t as usize).collect())
        .collect();
    let logits = trained.members[0]
        .forward(x, Mode::Eval)
        .into_data()
        .to_vec()
        .unwrap();
    (inputs, logits)
}

fn reference_logits(kind: &str, state: &StateDict, inputs: &[Vec<usize>]) -> Vec<f32> {
    inputs
        .iter()
        .flat_map(|row| reference::forward(kind, state, 2, row))
        .flatten()
        .collect()
}

fn assert_close(kind: &str, ours: &[f32], reference: &[f32]) {
    assert_eq!(ours.len(), reference.len(), "{kind}");
    let worst = ours
        .iter()
        .zip(reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(worst < 1e-4, "{kind}: logits differ by up to {worst}");
}

fn import(dir: &Path, file: &Path, kind: &str, runs: &str, sets: &[&str]) -> std::process::Output {
    let mut args = vec![
        "import".to_string(),
        file.display().to_string(),
        "--type".into(),
        kind.into(),
        "--data".into(),
        "names.txt".into(),
        "--runs".into(),
        runs.into(),
    ];
    for set in SIZES.iter().chain(sets) {
        args.extend(["--set".to_string(), set.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    makemore(&args, dir, &[])
}

fn read_safetensors(path: &Path) -> StateDict {
    let bytes = std::fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    file.tensors()
        .into_iter()
        .map(|(name, view)| {
            assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            (name, (view.shape().to_vec(), values))
        })
        .collect()
}

fn lower_triangular_ones(t: usize) -> Vec<f32> {
    (0..t)
        .flat_map(|i| (0..t).map(move |j| if j <= i { 1.0 } else { 0.0 }))
        .collect()
}

/// A state_dict of makemore.py's shapes with spread-out deterministic values, masks included.
fn made_up_state_dict(kind: &str) -> torch::Tensors {
    let (v, t) = names_dims();
    let mut k = 0u64;
    let mut tensors: torch::Tensors = reference::parameter_shapes(kind, v, t, 8, 16, 2)
        .into_iter()
        .map(|(name, shape)| {
            let values = (0..shape.iter().product())
                .map(|_| {
                    k = k
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (k >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                })
                .collect();
            (name, shape, values)
        })
        .collect();
    for (name, shape) in reference::buffer_shapes(kind, t, 2) {
        tensors.push((name, shape, lower_triangular_ones(t)));
    }
    tensors
}

#[test]
fn a_makemore_py_checkpoint_imports_to_its_own_logits() {
    let dir = tempfile::tempdir().unwrap();
    common::names_file(dir.path());
    for kind in FAMILIES {
        let tensors = made_up_state_dict(kind);
        let model_pt = dir.path().join(format!("{kind}.pt"));
        torch::save(&model_pt, &tensors);
        let runs = format!("runs-{kind}");
        let out = import(dir.path(), &model_pt, kind, &runs, &[]);
        assert!(out.status.success(), "{kind}: {}", stderr(&out));
        let (inputs, ours) = our_logits(&common::sole_run(&dir.path().join(&runs)));
        let state: StateDict = tensors
            .into_iter()
            .map(|(name, shape, values)| (name, (shape, values)))
            .collect();
        assert_close(kind, &ours, &reference_logits(kind, &state, &inputs));
    }
}

#[test]
fn export_writes_makemore_py_names_and_layouts_and_import_reads_them_back() {
    let dir = tempfile::tempdir().unwrap();
    let (v, t) = names_dims();
    for kind in FAMILIES {
        let file = common::experiment(dir.path(), kind, "");
        let runs = format!("trained-{kind}");
        let args = [
            "run",
            file.to_str().unwrap(),
            "--runs",
            &runs,
            "--set",
            "schedule.steps=10",
        ];
        let out = makemore(&args, dir.path(), &[]);
        assert!(out.status.success(), "{kind}: {}", stderr(&out));
        let trained = common::sole_run(&dir.path().join(&runs));
        let exported = dir.path().join(format!("{kind}.safetensors"));
        let out = makemore(
            &[
                "export",
                trained.to_str().unwrap(),
                "--safetensors",
                exported.to_str().unwrap(),
            ],
            dir.path(),
            &[],
        );
        assert!(out.status.success(), "{kind}: {}", stderr(&out));

        // Exactly makemore.py's state_dict: parameters, then the causal masks as buffers.
        let state = read_safetensors(&exported);
        let shapes: HashMap<String, Vec<usize>> = state
            .iter()
            .map(|(name, (shape, _))| (name.clone(), shape.clone()))
            .collect();
        let mut expected = reference::parameter_shapes(kind, v, t, 8, 16, 2);
        expected.extend(reference::buffer_shapes(kind, t, 2));
        assert_eq!(shapes, expected.into_iter().collect(), "{kind}");
        for (name, _) in reference::buffer_shapes(kind, t, 2) {
            assert_eq!(state[&name].1, lower_triangular_ones(t), "{name}");
        }
        let (inputs, ours) = our_logits(&trained);
        assert_close(kind, &ours, &reference_logits(kind, &state, &inputs));

        // Back again, from safetensors and from PyTorch's format: the very same logits.
        let model_pt = dir.path().join(format!("{kind}-model.pt"));
        let mut tensors: torch::Tensors = state
            .into_iter()
            .map(|(name, (shape, values))| (name, shape, values))
            .collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        torch::save(&model_pt, &tensors);
        for (from, runs) in [(&exported, "st"), (&model_pt, "pt")] {
            let runs = format!("{runs}-{kind}");
            let out = import(dir.path(), from, kind, &runs, &[]);
            assert!(out.status.success(), "{kind}: {}", stderr(&out));
            let imported = common::sole_run(&dir.path().join(&runs));
            assert_eq!(our_logits(&imported).1, ours, "{kind} from {from:?}");
        }
    }
}

#[test]
fn an_imported_model_fine_tunes_with_resume() {
    let dir = tempfile::tempdir().unwrap();
    common::names_file(dir.path());
    let model_pt = dir.path().join("model.pt");
    torch::save(&model_pt, &made_up_state_dict("gru"));
    // Fine-tuning settings go with the import; resuming changes only the number of steps.
    let out = import(
        dir.path(),
        &model_pt,
        "gru",
        "runs",
        &["schedule.learning_rate=0.01"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let run = common::sole_run(&dir.path().join("runs"));
    let summary = |run: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap()
    };
    let imported = summary(&run);
    assert_eq!(imported["status"], "done");
    assert_eq!(imported["step"], 0);
    let run_arg = run.to_str().unwrap();
    let out = makemore(
        &["run", "--resume", run_arg, "--set", "schedule.steps=30"],
        dir.path(),
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let tuned = summary(&run);
    assert_eq!(tuned["step"], 30);
    assert!(
        tuned["final_train_loss"].as_f64() < imported["final_train_loss"].as_f64(),
        "{tuned} vs {imported}"
    );
    let out = makemore(&["sample", run_arg, "-n", "3"], dir.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn bad_imports_and_exports_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    common::names_file(dir.path());
    let gru = dir.path().join("gru.pt");
    torch::save(&gru, &made_up_state_dict("gru"));
    let garbage = common::write(dir.path(), "garbage.pt", "not a checkpoint\n");
    let cases: [(&Path, &str, &str); 4] = [
        (
            &gru,
            "rnn",
            "cell.xh_to_z.weight is not a parameter of makemore.py's rnn",
        ),
        (&gru, "lstm", "makemore.py has no lstm model"),
        (&garbage, "mlp", "neither a PyTorch checkpoint"),
        (Path::new("missing.pt"), "mlp", "missing.pt"),
    ];
    for (file, kind, message) in cases {
        let out = import(dir.path(), file, kind, "runs", &[]);
        assert_eq!(out.status.code(), Some(2), "{kind}: {}", stderr(&out));
        assert!(stderr(&out).contains(message), "{}", stderr(&out));
    }
    // A model of other sizes names the tensor and both shapes.
    let mut args = vec![
        "import",
        gru.to_str().unwrap(),
        "--type",
        "gru",
        "--data",
        "names.txt",
    ];
    args.extend(["--runs", "runs", "--set", "model.n_embd2=4"]);
    let out = makemore(&args, dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out)
            .contains("cell.xh_to_z.weight has shape [16, 24], this gru model needs [4, 68]"),
        "{}",
        stderr(&out)
    );
    assert!(
        !dir.path().join("runs").exists(),
        "a failed import leaves no run"
    );

    // makemore.py has no LSTM and no lecture-style MLP to export to.
    let file = common::experiment(dir.path(), "mlp", "");
    let out = makemore(
        &[
            "run",
            file.to_str().unwrap(),
            "--set",
            "schedule.steps=2",
            "--set",
            "model.block_size=3",
        ],
        dir.path(),
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let run = common::sole_run(&dir.path().join("runs"));
    let out = makemore(
        &[
            "export",
            run.to_str().unwrap(),
            "--safetensors",
            "mlp.safetensors",
        ],
        dir.path(),
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("model.block_size = 3"),
        "{}",
        stderr(&out)
    );
}
