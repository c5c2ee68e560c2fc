//! `makemore report --html`: the page in a real browser, headless Chromium (installed by the
//! test where it runs as root, skipped with a message elsewhere, a failure under CI). It loads
//! from disk with no console message and no request (its Content-Security-Policy forbids every
//! request, and Chromium reports each refused one on the console), and its DOM holds the rows
//! in the ranking's order, every chart, and every configuration's samples, marked; a link with
//! `#sort=COLUMN` opens it sorted by that column.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{experiment, makemore, stderr, stdout};

const CHROMIUM: &str = "/usr/bin/chromium";

/// Debian's Chromium: there already, or installed where the test runs as root. Looked for once
/// per test binary: tests running side by side each calling apt-get raced for its lock, and all
/// but one failed to install it (seen on a fresh machine under CI); now they wait for the one.
fn chromium() -> Option<PathBuf> {
    static FOUND: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    FOUND.get_or_init(find_or_install).clone()
}

fn find_or_install() -> Option<PathBuf> {
    let path = PathBuf::from(CHROMIUM);
    let root = unsafe { libc::geteuid() } == 0;
    if !path.exists() && root {
        let install = || {
            Command::new("apt-get")
                .args(["install", "-y", "-q", "chromium"])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .is_ok_and(|s| s.success())
        };
        let _ = install()
            || (Command::new("apt-get")
                .args(["update", "-q"])
                .status()
                .is_ok()
                && install());
    }
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "under CI: cannot install {CHROMIUM}"
    );
    eprintln!("skipped: no {CHROMIUM} (apt-get install chromium, as root)");
    None
}

/// The DOM after the page's script ran, and every console message, with a screenshot taken.
fn load(chromium: &Path, page: &Path, screenshot: &Path) -> (String, Vec<String>) {
    load_at(chromium, page, "", screenshot)
}

/// The same, with `fragment` (`#…`) after the page's address.
fn load_at(
    chromium: &Path,
    page: &Path,
    fragment: &str,
    screenshot: &Path,
) -> (String, Vec<String>) {
    let profile = tempfile::tempdir().unwrap();
    let browse = |what: &str| {
        Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--enable-logging=stderr",
                "--v=0",
                "--window-size=1400,2400",
                what,
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("file://{}{fragment}", page.display()))
            .output()
            .unwrap()
    };
    let dom = browse("--dump-dom");
    assert!(dom.status.success(), "{}", stderr(&dom));
    let shot = browse(&format!("--screenshot={}", screenshot.display()));
    assert!(shot.status.success(), "{}", stderr(&shot));
    let console = (stderr(&dom).lines())
        .filter(|l| l.contains(":CONSOLE"))
        .map(String::from)
        .collect();
    (stdout(&dom), console)
}

/// Bigrams in three configurations that differ in two settings, two seeds each.
fn trained(dir: &Path) -> PathBuf {
    experiment(dir, "bigram", "");
    for (lr, batch) in [("0.1", "8"), ("0.01", "8"), ("0.001", "16")] {
        for seed in ["1", "2"] {
            let sets = [
                format!("schedule.learning_rate={lr}"),
                format!("schedule.batch_size={batch}"),
                format!("seed={seed}"),
                "dataset.val_fraction=0.2".to_string(),
            ];
            let mut args = vec!["run", "bigram.toml", "--runs", "runs"];
            for set in &sets {
                args.extend(["--set", set]);
            }
            let out = makemore(&args, dir, &[]);
            assert!(out.status.success(), "{}", stderr(&out));
        }
    }
    dir.join("runs")
}

/// The page of `trained` runs, and the report as JSON.
fn written_page(dir: &Path) -> (PathBuf, serde_json::Value) {
    let runs = trained(dir);
    let page = dir.join("report.html");
    let (runs, path) = (runs.to_str().unwrap(), page.to_str().unwrap());
    let args = ["report", runs, "--format", "json", "--html", path];
    let out = makemore(&args, dir, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    (page, serde_json::from_str(&stdout(&out)).unwrap())
}

#[test]
fn the_page_loads_alone_and_shows_the_ranking_and_every_sample() {
    let Some(chromium) = chromium() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (page, report) = written_page(dir.path());
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-page.png");
    let (dom, console) = load(&chromium, &page, &screenshot);
    assert_eq!(console, Vec::<String>::new(), "console messages");
    assert!(dom.contains("data-ready=\"yes\""), "the script ran");

    // The table's rows in the ranking's order, each with its learning rate.
    let ranked = report["rows"].as_array().unwrap();
    let lr = |row: &serde_json::Value| {
        let value = &row["keys"]["schedule.learning_rate"];
        value.as_str().unwrap().to_string()
    };
    let expected: Vec<String> = ranked.iter().map(lr).collect();
    assert_eq!(column(&dom, "learning_rate"), expected);
    // Every chart: curves and ranking, train against val, one per setting, parallel coordinates.
    for heading in [
        "Curves and ranking",
        "Train against val",
        "Parallel coordinates",
    ] {
        assert!(dom.contains(&format!("<h2>{heading}</h2>")), "{heading}");
    }
    assert_eq!(dom.matches("<svg").count(), 1 + 1 + 2 + 1, "charts");
    // Every configuration's samples: its first run's last block of samples.txt, as marked there.
    for row in ranked {
        let run = PathBuf::from(row["runs"][0].as_str().unwrap());
        let text = std::fs::read_to_string(run.join("samples.txt")).unwrap();
        let last = text.rsplit("# step ").next().unwrap();
        for line in last.lines().skip(1) {
            let (item, mark) = line.split_once('\t').unwrap();
            let class = if mark.starts_with("in-") && mark != "in-train" {
                "held-out"
            } else {
                mark
            };
            let shown = format!("<li class=\"{class}\">{item}</li>");
            assert!(dom.contains(&shown), "{shown}");
        }
    }
}

/// The cells of the table's column headed `heading`, top to bottom, after checking that the rows
/// carry their ranks (`data-rank`) as the report numbered them.
fn column(dom: &str, heading: &str) -> Vec<String> {
    let cells = |row: &str, tag: &str| -> Vec<String> {
        let cell = regex::Regex::new(&format!("<{tag}[^>]*>([^<]*)</{tag}>")).unwrap();
        cell.captures_iter(row).map(|c| c[1].to_string()).collect()
    };
    let head = regex::Regex::new("<thead><tr>(.*?)</tr></thead>").unwrap();
    let head = cells(&head.captures(dom).expect("a table")[1], "th");
    let at = head.iter().position(|h| h == heading).expect(heading);
    let row = regex::Regex::new(r#"<tr class="[a-z]*" data-rank="(\d+)">(.*?)</tr>"#).unwrap();
    let mut ranks: Vec<usize> = Vec::new();
    let values = (row.captures_iter(dom))
        .map(|c| {
            ranks.push(c[1].parse().unwrap());
            cells(&c[2], "td")[at].clone()
        })
        .collect();
    ranks.sort();
    assert_eq!(ranks, (1..=ranks.len()).collect::<Vec<_>>(), "ranks");
    values
}

/// `#sort=COLUMN` sorts the table by that column, numbers as numbers; `#sort=-COLUMN` the other
/// way. (As text, "0.001" < "0.01" < "0.1" too: the batch sizes, 8 and 16, tell numbers from text.)
#[test]
fn a_link_opens_the_page_sorted_by_a_column() {
    let Some(chromium) = chromium() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (page, _) = written_page(dir.path());
    let shot = dir.path().join("sorted.png");
    for (fragment, expected) in [
        ("#sort=learning_rate", ["0.001", "0.01", "0.1"]),
        ("#sort=-learning_rate", ["0.1", "0.01", "0.001"]),
    ] {
        let (dom, console) = load_at(&chromium, &page, fragment, &shot);
        assert_eq!(console, Vec::<String>::new(), "console messages");
        assert_eq!(column(&dom, "learning_rate"), expected, "{fragment}");
    }
    // Whatever the ranking's order, 16 first shows a sort, and a numeric one ("8" > "16" as text).
    let (dom, _) = load_at(&chromium, &page, "#sort=-batch_size", &shot);
    assert_eq!(
        column(&dom, "batch_size"),
        ["16", "8", "8"],
        "16 > 8, as numbers"
    );
}

/// The check above can fail: a page that asks for an image, or writes to the console, is caught.
#[test]
fn a_request_or_a_console_message_is_seen() {
    let Some(chromium) = chromium() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("bad.html");
    let head = "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'\">";
    std::fs::write(&page, format!("<!DOCTYPE html><html><head>{head}</head><body><img src=\"http://127.0.0.1:9/x.png\"></body></html>")).unwrap();
    let (_, console) = load(&chromium, &page, &dir.path().join("bad.png"));
    assert_eq!(console.len(), 1, "{console:?}");
    assert!(
        console[0].contains("http://127.0.0.1:9/x.png"),
        "{console:?}"
    );
}
