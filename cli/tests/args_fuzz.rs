//! The command line's argument space, fuzzed on tiny models: every subcommand's flags are read
//! from its own `--help`, and seeded random command lines combine them with hostile values
//! (0, -1, huge numbers, NaN, empty strings, missing and non-UTF-8-looking paths, folders, CJK
//! names) and with small real files (a tiny L-RNN description with weights and an input, the
//! bundled Context-LRNN, a photo, a VOC tree). Every run must end within its time limit with
//! success or a clean error: no panic, no abort, no signal. The memory limit is set low so that
//! a valid but large request is refused rather than attempted.
//!
//! `LRNN_ARGS_FUZZ_SECONDS` sets the budget (default 40); `LRNN_ARGS_FUZZ_SEED` the seed.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../../core/tests/common/scratch.rs"]
mod scratch;

/// Commands not run here: long trainings and network access.
const SKIPPED: &[&str] = &["train", "train-seg", "fetch", "help"];

/// Flags that name an output: always a fresh path in the scratch folder.
const OUTPUTS: &[&str] = &["--out", "--output", "--sheet", "--voc-out"];

fn lrnn() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lrnn"));
    c.env("LRNN_MEMORY_LIMIT_GB", "1").env("RAYON_NUM_THREADS", "1");
    c
}

/// One flag of a subcommand, as its help describes it.
#[derive(Debug, Clone)]
struct Flag {
    name: String,
    /// `--name <VALUE>` (else a switch).
    takes_value: bool,
    /// The values it accepts when its help lists them.
    choices: Vec<String>,
}

/// A subcommand: its path (`probe erf`), its flags and the flags its usage line requires.
#[derive(Debug)]
struct Cmd {
    path: Vec<String>,
    flags: Vec<Flag>,
    required: Vec<String>,
}

/// The flags a help text describes.
fn flags_of(text: &str) -> Vec<Flag> {
    let mut flags: Vec<Flag> = Vec::new();
    let mut in_choices = false;
    for line in text.lines() {
        let t = line.trim();
        if in_choices {
            if let Some(rest) = t.strip_prefix("- ") {
                let value = rest.split(':').next().unwrap_or("").trim().to_string();
                if let Some(f) = flags.last_mut() {
                    f.choices.push(value);
                }
                continue;
            }
            if !t.is_empty() {
                in_choices = false;
            }
        }
        if t.starts_with("Possible values:") {
            in_choices = true;
            continue;
        }
        if t.starts_with('-') {
            let words: Vec<&str> = t.split_whitespace().collect();
            let Some(i) = words.iter().position(|w| w.starts_with("--")) else { continue };
            let name = words[i].trim_end_matches(',').to_string();
            if name == "--help" || name == "--version" {
                continue;
            }
            let takes_value = words.get(i + 1).is_some_and(|w| w.starts_with('<'));
            let mut choices = Vec::new();
            if let Some(list) = t.split("[possible values: ").nth(1) {
                choices = list
                    .trim_end_matches(']')
                    .split(", ")
                    .map(|v| v.trim_end_matches(']').to_string())
                    .collect();
            }
            flags.push(Flag { name, takes_value, choices });
        }
    }
    flags
}

/// The subcommands with their flags, read from `--help`.
fn grammar() -> Vec<Cmd> {
    let help = |args: &[String]| {
        let o = lrnn().args(args).arg("--help").output().unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let commands = |text: &str| -> Vec<String> {
        text.lines()
            .skip_while(|l| !l.starts_with("Commands:"))
            .skip(1)
            .take_while(|l| l.starts_with("  "))
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .filter(|c| !SKIPPED.contains(&c.as_str()))
            .collect()
    };
    let cmd = |path: Vec<String>, text: &str| {
        let usage = text.lines().find(|l| l.starts_with("Usage:")).unwrap_or("");
        let required = usage.split_whitespace().filter(|w| w.starts_with("--")).map(str::to_string).collect();
        Cmd { path, flags: flags_of(text), required }
    };
    let mut out = Vec::new();
    for c in commands(&help(&[])) {
        let text = help(std::slice::from_ref(&c));
        let subs = commands(&text);
        if subs.is_empty() {
            out.push(cmd(vec![c.clone()], &text));
        }
        for s in subs {
            let path = vec![c.clone(), s.clone()];
            let text = help(&path);
            out.push(cmd(path, &text));
        }
    }
    out
}

/// Small real files to point flags at, and an output folder.
struct Files {
    values: Vec<String>,
}

impl Files {
    /// The values of the pool that fit a flag by its name (all of them when none is known).
    fn fitting(&self, flag: &str) -> Vec<String> {
        let keys: &[&str] = match flag {
            f if f.contains("model") => &["json", "context-lrnn", "E-RNN", "FCN", "Context"],
            f if f.contains("weights") || f.contains("trunk") => &["weights.safetensors"],
            f if f.contains("input") => &["io.safetensors"],
            f if f.contains("image") => &["png", "jpg"],
            f if f.contains("run") || f.contains("init-from") => &["context-lrnn"],
            f if f.contains("voc") || f.contains("path") || f.contains("pred") => &["voc", "args-fuzz"],
            f if f.contains("format") || f.contains("data") => &["context", "scenes", "voc"],
            f if f.contains("layer") => &["conv1=horizontal", "horizontal"],
            _ => &["0", "1", "3", "32", "96", "nan", "-1"],
        };
        let fit: Vec<String> =
            self.values.iter().filter(|v| keys.iter().any(|k| v.contains(k) || *v == k)).cloned().collect();
        if fit.is_empty() {
            self.values.clone()
        } else {
            fit
        }
    }
}

fn files(dir: &Path) -> Files {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let fixtures = root.join("tests/fixtures");
    let model = root.join("assets/models/context-lrnn");
    let photo = root.join("assets/photos/chelsea.png");
    let voc = dir.join("voc");
    for d in ["JPEGImages", "SegmentationClass", "ImageSets/Segmentation"] {
        std::fs::create_dir_all(voc.join(d)).unwrap();
    }
    std::fs::copy(&photo, voc.join("JPEGImages/a.jpg")).unwrap();
    std::fs::write(voc.join("ImageSets/Segmentation/val.txt"), "a\n").unwrap();
    let cjk = dir.join("写真 🐱.png");
    std::fs::copy(&photo, &cjk).unwrap();
    let s = |p: &Path| p.to_string_lossy().into_owned();
    let mut values: Vec<String> = [
        "0",
        "1",
        "-1",
        "3",
        "32",
        "96",
        "18446744073709551616",
        "4294967297",
        "1e308",
        "nan",
        "-inf",
        "",
        "x",
        "horizontal",
        "conv1=horizontal",
        "vanilla",
        "FCN-8s",
        "E-RNN-Max",
        "Context-CNN",
        "context",
        "scenes",
        "voc",
        "val",
        "train",
        "cpu",
        "wgpu",
        "fused",
        "reference",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    values.extend(
        [
            fixtures.join("lrnn_gru_sum.json"),
            fixtures.join("lrnn_gru_sum.weights.safetensors"),
            fixtures.join("lrnn_gru_sum.io.safetensors"),
            model.clone(),
            model.join("model.json"),
            model.join("weights.safetensors"),
            photo,
            voc,
            cjk,
            dir.join("missing.safetensors"),
            dir.to_path_buf(),
        ]
        .iter()
        .map(|p| s(p)),
    );
    Files { values }
}

/// Runs one command line with a time limit: its exit code (0 success, 1 an error, 2 the
/// parser's refusal), or `Err` saying what went wrong.
/// Runs from `cwd` (the scratch folder), so that relative default outputs land there.
fn run(args: &[String], cwd: &Path, limit: Duration) -> Result<usize, String> {
    let mut child = lrnn()
        .current_dir(cwd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            if err.contains("panicked") || err.contains("memory allocation of") {
                return Err(format!("{status}: {}", err.lines().take(3).collect::<Vec<_>>().join(" | ")));
            }
            return match status.code() {
                Some(code @ 0..=2) => Ok(code as usize),
                Some(code) => Err(format!("exit code {code}: {}", err.lines().next().unwrap_or(""))),
                None => Err(format!("killed by a signal ({status})")),
            };
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("still running after {} s", limit.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn random_command_lines_on_tiny_models_end_cleanly() {
    let seconds: u64 =
        std::env::var("LRNN_ARGS_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(40);
    let mut rng: u64 =
        std::env::var("LRNN_ARGS_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed);
    let mut next = move || {
        rng = rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let dir = scratch::scratch_dir("args-fuzz");
    let grammar = grammar();
    assert!(grammar.len() >= 12, "found only {} subcommands: {grammar:?}", grammar.len());
    // The help texts were read as meant: required flags, flags with values, listed choices.
    let predict = grammar.iter().find(|c| c.path == ["predict"]).unwrap();
    assert!(predict.required.contains(&"--model".to_string()), "{predict:?}");
    let device = predict.flags.iter().find(|f| f.name == "--device").unwrap();
    assert!(device.takes_value && device.choices.contains(&"wgpu".to_string()), "{device:?}");
    let files = files(&dir);
    // Every real file offered as a value, as it was: no command line may change one.
    let inputs: Vec<(String, Vec<u8>)> = files
        .values
        .iter()
        .filter(|v| Path::new(v).is_file())
        .map(|v| (v.clone(), std::fs::read(v).unwrap()))
        .collect();
    let start = Instant::now();
    let (mut runs, mut failures, mut codes) = (0usize, Vec::new(), [0usize; 3]);
    while start.elapsed() < Duration::from_secs(seconds) {
        let cmd = &grammar[(next() % grammar.len() as u64) as usize];
        let mut args = cmd.path.clone();
        // Output flags always point into the scratch folder (never at a real file).
        let out = dir.join(format!("out-{runs}"));
        let out = out.to_string_lossy().into_owned();
        let pick = |n: u64, v: &[String]| v[(n % v.len() as u64) as usize].clone();
        if next() % 3 != 0 {
            // Well formed: the required flags and a few others, each with a value of its kind
            // (one of its listed choices, a file that fits its name); now and then one hostile.
            let mut chosen: Vec<Flag> =
                cmd.flags.iter().filter(|f| cmd.required.contains(&f.name)).cloned().collect();
            for _ in 0..(next() % 4) {
                if !cmd.flags.is_empty() {
                    let f = pick(next(), &cmd.flags.iter().map(|f| f.name.clone()).collect::<Vec<_>>());
                    if !chosen.iter().any(|c| c.name == f) {
                        chosen.push(cmd.flags.iter().find(|c| c.name == f).unwrap().clone());
                    }
                }
            }
            let hostile = if next() % 4 == 0 { next() as usize % chosen.len().max(1) } else { usize::MAX };
            for (i, f) in chosen.iter().enumerate() {
                args.push(f.name.clone());
                if !f.takes_value {
                    continue;
                }
                let value = if OUTPUTS.contains(&f.name.as_str()) {
                    out.clone()
                } else if i == hostile {
                    pick(next(), &files.values)
                } else if !f.choices.is_empty() {
                    pick(next(), &f.choices)
                } else {
                    pick(next(), &files.fitting(&f.name))
                };
                args.push(value);
            }
        } else {
            // Anything: any flags, any values, switches given values, values left out.
            for _ in 0..(next() % 6) {
                if cmd.flags.is_empty() {
                    break;
                }
                let flag = &cmd.flags[(next() % cmd.flags.len() as u64) as usize];
                args.push(flag.name.clone());
                let value = if OUTPUTS.contains(&flag.name.as_str()) {
                    out.clone()
                } else {
                    pick(next(), &files.values)
                };
                if next() % 5 != 0 {
                    args.push(value);
                }
            }
        }
        // rf-depth of the full VGG-16 FCN at its 384 px default is a legitimate job of hours on two
        // cores (a backward pass per layer and input, with a progress bar): such a line runs at
        // 64 px unless it names a size itself.
        if cmd.path == ["probe", "rf-depth"]
            && args.iter().any(|a| a == "FCN-8s")
            && !args.iter().any(|a| a == "--size")
        {
            args.extend(["--size".to_string(), "64".to_string()]);
        }
        // A line naming the full VGG-16 FCN may legitimately compute for a while (its CPU ERF at
        // 384x384 takes about a minute in the test build on two cores): a hang is still caught.
        let limit = if args.iter().any(|a| a == "FCN-8s") { 300 } else { 60 };
        match run(&args, &dir, Duration::from_secs(limit)) {
            Ok(code) => codes[code.min(2)] += 1,
            Err(e) => failures.push(format!("lrnn {}: {e}", args.join(" "))),
        }
        runs += 1;
    }
    println!(
        "{runs} command lines over {} subcommands: {} succeeded, {} refused with an error, {} refused by the parser",
        grammar.len(),
        codes[0],
        codes[1],
        codes[2]
    );
    assert!(runs > 20, "only {runs} command lines ran");
    for (path, bytes) in &inputs {
        assert!(std::fs::read(path).unwrap() == *bytes, "a command line changed the input {path}");
    }
    assert!(
        failures.is_empty(),
        "{} of {runs} command lines failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
