//! Faults during every kind of write the command line does: a full disk, a read-only folder,
//! SIGKILL and SIGINT at any moment. The last good state always loads: a file output is the
//! whole file or absent; a folder output written whole or not at all (`pack`, `insert`,
//! `--voc-out`) is the whole folder or absent; a folder of separate files (`predict`, the
//! probes) holds only whole files. Temporary files a killed run left are removed by the next
//! run, and errors name the path and the OS's reason.
//!
//! A full disk is a file size limit (`ulimit -f`, with SIGXFSZ ignored, so writes fail with
//! EFBIG as they would with ENOSPC). A read-only folder is `chmod 555`; as root (who ignores
//! permissions) the command runs as `nobody`, from a copy of the binary and inputs it can read.
//! Training's checkpoints have their own SIGKILL/SIGINT test in `cli.rs`.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "../../core/tests/common/scratch.rs"]
mod scratch;

/// How an output is written.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// One file, written atomically.
    File,
    /// A folder that appears whole or not at all.
    Folder,
    /// A folder of separate files, each written atomically.
    Files,
}

/// One kind of write: the command (`{out}` stands for the output path, `{in}` for the inputs'
/// folder) and how it writes.
struct Case {
    name: &'static str,
    args: &'static [&'static str],
    kind: Kind,
}

const CASES: &[Case] = &[
    Case {
        name: "run",
        args: &[
            "run",
            "--model",
            "{in}/gru.json",
            "--weights",
            "{in}/gru.weights.safetensors",
            "--input",
            "{in}/gru.io.safetensors",
            "--device",
            "cpu",
            "--output",
            "{out}",
        ],
        kind: Kind::File,
    },
    Case {
        name: "init",
        args: &["init", "--model", "{in}/gru.json", "--seed", "3", "--output", "{out}"],
        kind: Kind::File,
    },
    Case {
        name: "pack",
        args: &["pack", "--run", "{in}/context-lrnn", "--half", "--out", "{out}"],
        kind: Kind::Folder,
    },
    Case {
        name: "insert",
        args: &["insert", "--run", "{in}/context-cnn", "--layer", "conv5=horizontal", "--out", "{out}"],
        kind: Kind::Folder,
    },
    Case {
        name: "voc-out",
        args: &["dataset", "--format", "scenes", "--count", "6", "--size", "64", "--voc-out", "{out}"],
        kind: Kind::Folder,
    },
    Case {
        name: "sheet",
        args: &["dataset", "--format", "voc", "--path", "{in}/voc", "--sheet", "{out}"],
        kind: Kind::File,
    },
    Case {
        name: "predict",
        args: &[
            "predict",
            "--model",
            "{in}/scenes/model.json",
            "--weights",
            "{in}/scenes/weights.safetensors",
            "--voc",
            "{in}/voc",
            "--size",
            "64",
            "--device",
            "cpu",
            "--out",
            "{out}",
        ],
        kind: Kind::Files,
    },
    Case {
        name: "probe-erf",
        args: &["probe", "erf", "--run", "{in}/context-lrnn", "--random", "2", "--out", "{out}"],
        kind: Kind::Files,
    },
    Case {
        name: "probe-recurrence",
        args: &["probe", "recurrence", "--run", "{in}/context-lrnn", "--out", "{out}"],
        kind: Kind::Files,
    },
];

/// A work folder that `nobody` can read: the binary and every input copied in.
struct Work {
    dir: PathBuf,
    bin: PathBuf,
    inputs: PathBuf,
    root: bool,
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_tree(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

fn open_to_all(p: &Path) {
    let mode = if p.is_dir() { 0o755 } else { 0o644 };
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap().flatten() {
            open_to_all(&e.path());
        }
    }
}

fn work(name: &str) -> Work {
    let dir = scratch::scratch_dir(name);
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let inputs = dir.join("in");
    std::fs::create_dir_all(&inputs).unwrap();
    let fixtures = repo.join("tests/fixtures");
    for (from, to) in [
        ("lrnn_gru_sum.json", "gru.json"),
        ("lrnn_gru_sum.weights.safetensors", "gru.weights.safetensors"),
        ("lrnn_gru_sum.io.safetensors", "gru.io.safetensors"),
    ] {
        std::fs::copy(fixtures.join(from), inputs.join(to)).unwrap();
    }
    for (from, to) in
        [("context-lrnn", "context-lrnn"), ("context-cnn", "context-cnn"), ("scenes-fcn8s-lrnn", "scenes")]
    {
        copy_tree(&repo.join("assets/models").join(from), &inputs.join(to));
    }
    // A small VOC tree: two photos with labels.
    let voc = inputs.join("voc");
    for d in ["JPEGImages", "SegmentationClass", "ImageSets/Segmentation"] {
        std::fs::create_dir_all(voc.join(d)).unwrap();
    }
    let photo = image::open(repo.join("assets/photos/chelsea.png")).unwrap().to_rgb8();
    let mut ids = String::new();
    for (i, side) in [(0, 80u32), (1, 48)] {
        let small = image::imageops::resize(&photo, side, side, image::imageops::FilterType::Triangle);
        small.save(voc.join(format!("JPEGImages/p{i}.jpg"))).unwrap();
        let label = image::GrayImage::from_fn(side, side, |x, _| image::Luma([u8::from(x > side / 2)]));
        label.save(voc.join(format!("SegmentationClass/p{i}.png"))).unwrap();
        ids.push_str(&format!("p{i}\n"));
    }
    std::fs::write(voc.join("ImageSets/Segmentation/val.txt"), &ids).unwrap();
    std::fs::write(voc.join("ImageSets/Segmentation/train.txt"), &ids).unwrap();
    let bin = dir.join("bin/lrnn");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_lrnn"), &bin).unwrap();
    open_to_all(&dir);
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Every folder above the work folder must let `nobody` through.
    let mut up = dir.parent();
    while let Some(p) = up {
        if p == std::env::temp_dir() || p.as_os_str().is_empty() {
            break;
        }
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        up = p.parent();
    }
    let root = std::fs::metadata(&inputs).unwrap().uid() == 0;
    Work { dir, bin, inputs, root }
}

impl Work {
    /// The command of `case` writing to `out`.
    fn command(&self, case: &Case, out: &Path) -> Command {
        let mut c = Command::new(&self.bin);
        self.args(&mut c, case, out);
        c
    }

    fn args(&self, c: &mut Command, case: &Case, out: &Path) {
        let inputs = self.inputs.to_string_lossy();
        let out = out.to_string_lossy();
        c.args(case.args.iter().map(|a| a.replace("{in}", &inputs).replace("{out}", &out)))
            .env("RAYON_NUM_THREADS", "1")
            .env("HOME", &self.dir)
            .current_dir(&self.dir)
            .stdin(Stdio::null());
    }

    fn run(&self, case: &Case, out: &Path) -> Output {
        self.command(case, out).output().unwrap()
    }
}

/// Every file under `p` (a file: itself), by its path relative to `p`, with its bytes.
fn tree(p: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(base: &Path, p: &Path, into: &mut BTreeMap<PathBuf, Vec<u8>>) {
        if p.is_dir() {
            for e in std::fs::read_dir(p).unwrap().flatten() {
                walk(base, &e.path(), into);
            }
        } else {
            into.insert(p.strip_prefix(base).unwrap().to_path_buf(), std::fs::read(p).unwrap());
        }
    }
    let mut m = BTreeMap::new();
    if p.exists() {
        walk(p, p, &mut m);
    }
    m
}

/// The files where two trees differ (empty: the same).
fn differ(a: &BTreeMap<PathBuf, Vec<u8>>, b: &BTreeMap<PathBuf, Vec<u8>>) -> Vec<PathBuf> {
    a.keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The entries of a folder that start with a dot: temporary files and folders.
fn hidden(dir: &Path) -> Vec<String> {
    let mut h = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            h.push(name.clone());
        }
        if e.path().is_dir() {
            h.extend(hidden(&e.path()).into_iter().map(|n| format!("{name}/{n}")));
        }
    }
    h
}

/// Whether what a fault left at `out` is a good state for `case`: absent, or whole (a file
/// output, a whole-or-nothing folder), or only whole files (a folder of separate files).
fn check_left(case: &Case, out: &Path, reference: &BTreeMap<PathBuf, Vec<u8>>) -> Result<(), String> {
    let left = tree(out);
    let visible: BTreeMap<_, _> = left
        .iter()
        .filter(|(p, _)| !p.components().any(|c| c.as_os_str().to_string_lossy().starts_with('.')))
        .collect();
    if !out.exists() {
        return Ok(());
    }
    match case.kind {
        Kind::File | Kind::Folder => {
            if left != *reference {
                return Err(format!(
                    "{}: {} is neither absent nor whole: {:?} differ",
                    case.name,
                    out.display(),
                    differ(&left, reference)
                ));
            }
        }
        Kind::Files => {
            for (p, bytes) in visible {
                if reference.get(p) != Some(bytes) {
                    return Err(format!("{}: {} is a partial file", case.name, out.join(p).display()));
                }
            }
        }
    }
    Ok(())
}

/// What `case` writes when nothing goes wrong (at `out`, removed again), and how long it takes.
/// Writes the same path as the faulty runs: some outputs record their own path.
fn reference(w: &Work, case: &Case, out: &Path) -> (BTreeMap<PathBuf, Vec<u8>>, Duration) {
    let start = Instant::now();
    let o = w.run(case, out);
    let took = start.elapsed();
    assert!(o.status.success(), "{}: {}", case.name, String::from_utf8_lossy(&o.stderr));
    let first = tree(out);
    remove(out);
    // Deterministic: a second run writes the same bytes (the fault checks compare with them).
    assert!(w.run(case, out).status.success());
    assert_eq!(differ(&first, &tree(out)), Vec::<PathBuf>::new(), "{}: two runs differ", case.name);
    remove(out);
    (first, took)
}

fn remove(out: &Path) {
    if out.is_dir() {
        std::fs::remove_dir_all(out).unwrap();
    } else if out.exists() {
        std::fs::remove_file(out).unwrap();
    }
}

#[test]
fn every_write_survives_sigkill_and_sigint_at_any_moment() {
    let w = work("killed");
    let mut killed = 0;
    for case in CASES {
        let parent = w.dir.join("killed").join(case.name);
        std::fs::create_dir_all(&parent).unwrap();
        let out = parent.join("out");
        let (reference, took) = reference(&w, case, &out);
        // Ten signals spread over the run's length (start-up, reading, computing, writing).
        for k in 0..10u32 {
            let delay = took.mul_f64(f64::from(k) / 8.0);
            let mut child =
                w.command(case, &out).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
            std::thread::sleep(delay);
            if k % 2 == 0 {
                child.kill().unwrap();
            } else {
                // (the shell's own `kill`: a fresh machine may lack procps' /bin/kill)
                let _ = Command::new("sh").arg("-c").arg(format!("kill -INT {}", child.id())).status();
            }
            let status = child.wait().unwrap();
            killed += usize::from(status.code().is_none());
            check_left(case, &out, &reference).unwrap();
            if case.kind != Kind::Files {
                // Whole: the next try starts afresh.
                remove(&out);
            }
        }
        // The next run completes the output and removes what the killed ones left.
        remove(&out);
        let o = w.run(case, &out);
        assert!(o.status.success(), "{}: {}", case.name, String::from_utf8_lossy(&o.stderr));
        assert_eq!(
            differ(&tree(&out), &reference),
            Vec::<PathBuf>::new(),
            "{}: the run after the kills",
            case.name
        );
        assert_eq!(hidden(&parent), Vec::<String>::new(), "{}: leftovers of killed runs", case.name);
    }
    println!("{killed} of {} runs ended by a signal", CASES.len() * 10);
    assert!(killed >= CASES.len() * 3, "only {killed} runs were still going when signalled");
}

#[test]
fn a_full_disk_is_an_error_naming_the_file_and_leaves_the_last_good_output() {
    let w = work("full");
    for case in CASES {
        let parent = w.dir.join("full").join(case.name);
        std::fs::create_dir_all(&parent).unwrap();
        let out = parent.join("out");
        // Writes beyond 512 bytes fail, as on a full disk.
        let mut c = Command::new("sh");
        c.arg("-c").arg("trap '' XFSZ; ulimit -f 1; exec \"$0\" \"$@\"").arg(&w.bin);
        w.args(&mut c, case, &out);
        let o = c.output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{}: {err}", case.name);
        assert!(
            err.contains("File too large") && err.contains(&*parent.to_string_lossy()),
            "{}: {err}",
            case.name
        );
        assert!(!err.contains("panicked"), "{}: {err}", case.name);
        // The message names the output, never a temporary name.
        assert!(!err.contains(".partial-") && !err.contains(".tmp-"), "{}: {err}", case.name);
        let reference = tree(&w.dir.join("none"));
        if case.kind != Kind::Files {
            check_left(case, &out, &reference).unwrap();
        }
        for (p, bytes) in tree(&out) {
            assert!(!bytes.is_empty(), "{}: an empty {}", case.name, p.display());
        }
        assert_eq!(hidden(&parent), Vec::<String>::new(), "{}: temporary files left", case.name);
        // The space comes back: the same command succeeds.
        remove(&out);
        let o = w.run(case, &out);
        assert!(o.status.success(), "{}: {}", case.name, String::from_utf8_lossy(&o.stderr));
    }
}

#[test]
fn a_read_only_folder_is_an_error_naming_it_and_nothing_is_written() {
    let w = work("read-only");
    for case in CASES {
        let parent = w.dir.join("read-only").join(case.name);
        std::fs::create_dir_all(&parent).unwrap();
        std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o555)).unwrap();
        let out = parent.join("out");
        let mut c = w.command(case, &out);
        if w.root {
            // Root ignores permissions: run as `nobody`.
            c.uid(65534).gid(65534);
        }
        let o = c.output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{}: {err}", case.name);
        assert!(
            err.contains("Permission denied") && err.contains(&*parent.to_string_lossy()),
            "{}: {err}",
            case.name
        );
        assert!(!err.contains("panicked"), "{}: {err}", case.name);
        assert!(std::fs::read_dir(&parent).unwrap().next().is_none(), "{}: something was written", case.name);
        std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}
