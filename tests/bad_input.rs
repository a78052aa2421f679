//! The bad-input matrix: each case gives `brasa` one kind of broken input and checks that it
//! exits with the documented code, names the file, key or value on stderr, never panics, and
//! leaves earlier output as it was.
//!
//! | case                                   | exit | stderr names                                  |
//! |----------------------------------------|------|-----------------------------------------------|
//! | spec file missing                      | 2    | `nope.toml: cannot read spec file nope.toml: No such file` |
//! | spec file empty                        | 2    | `empty.toml: `experiment`: missing required key` |
//! | spec file binary garbage               | 2    | `garbage.toml: … stream did not contain valid UTF-8` |
//! | invalid TOML                           | 2    | `bad.toml: invalid TOML: TOML parse error at line 3, column 7` |
//! | spec is a directory                    | 2    | `adir.toml: cannot read spec file adir.toml: Is a directory` |
//! | spec chmod 000 (skipped as root)       | 2    | `spec.toml` |
//! | `extends` a missing file               | 2    | `spec.toml: `extends` = "base.toml": cannot read spec file base.toml` |
//! | `extends` cycle                        | 2    | `b.toml: `extends` = "a.toml": extends chain loops back: b.toml -> a.toml` |
//! | wrong type, each section (12 keys)     | 2    | `` `train.epochs` = "three": expected usize``, `` `data.root` = 3: expected path string``, `` `report.formats[0]` = "pdf": unknown value; expected one of: markdown, html`` |
//! | out of range, each section (10 keys)   | 2    | `` `data.split.validation` = 1.5: must be in (0, 1)``, `` `train.batch_size` = 0: must be at least 1`` |
//! | bad `[sweep]`                          | 2    | the sweep mode / swept key `train.epochz` |
//! | unknown key: top level, section, nested table, array element | 2 | `` `colour`: unknown key; valid keys here: …``, `` `augment.chain[3].pp`: unknown key; did you mean `augment.chain[3].p`?`` |
//! | `--set foo`, `--set =3`, `--set a..b=3` | 2   | `invalid value 'foo' for '--set <KEY=VALUE>': `foo` is not KEY=VALUE` |
//! | `--set train.epochs=banana`            | 2    | `--set: `train.epochs` = "banana": expected usize` |
//! | `BRASA_TRAIN__EPOCHS=abc`, `BRASA_TRAIN__EPOCHZ=3` | 2 | `environment variable BRASA_TRAIN__EPOCHS: `train.epochs` = "abc"` |
//! | data root missing                      | 2    | `` `data.root` = "data": …/data does not exist (set data.source to download it)`` |
//! | data root is a file                    | 2    | `` `data.root` = "data": …/data is not a folder`` |
//! | data root empty                        | 3    | `training folder …/data/train does not exist` |
//! | class folder without images            | 3    | `class folder …/data/train/eel holds no images (jpg, jpeg, png, bmp)` |
//! | one class only                         | 0    | accepted today; `validate` prints `(1 classes; …)` |
//! | 1×1, 10000×50, 16-bit, palette, grayscale PNG/JPEG, CMYK JPEG | 0 | decoded and trained on (one step) |
//! | empty `.jpg`                           | 3    | `empty.jpg` (the undecodable file is named) |
//! | truncated JPEG                         | 3    | `cut.jpg` |
//! | symlink loop in the data folder        | 3    | `cannot list …/data/train/cat: File system loop found` |
//! | non-UTF-8 file name                    | 0    | decoded and trained on |
//! | read-only output folder (as root: a read-only tmpfs) | 5 | `ro/run: Read-only file system` |
//! | full output folder (a 256 KB tmpfs)    | 5    | `full/run…: No space left on device` |
//! | `--out` is an existing file            | 5    | `taken: File exists`; the file is unchanged |
//! | run folder of another spec             | 5    | `run folder run: holds a run of a different spec`; files byte-identical |
//! | finished run folder                    | 5    | `run folder run: holds a finished run of this spec`; files byte-identical |
//! | unfinished run (control)               | 0    | `resuming after epoch 1` |
//! | truncated checkpoint, then resume      | 5    | `run folder run: cannot load checkpoint …/epoch-0001.bpk` |
//! | `state.json` garbage, then resume      | 5    | `state.json` |
//! | `meta.json` garbage, then resume       | 5    | `meta.json` |
//! | unknown subcommand / flag              | 2    | `unrecognized subcommand 'trian'`, `unexpected argument '--no-such-flag'` |
//! | `--threads 0`                          | 2    | `--threads must be at least 1` |
//! | `brasa report` on a non-run folder     | 5    | `run folder data: no meta.json: not a brasa run folder` |
//! | `brasa predict` without checkpoints    | 5    | `run folder run: cannot load …/epoch-0001.bpk` |
//! | `brasa predict --run nowhere`          | 5    | `run folder nowhere: no meta.json` |
//! | `brasa compare` one folder / non-runs  | 2, 5 | `2 values required by '<RUN_DIR> <RUN_DIR>...'`, `run folder data: no meta.json` |
//!
//! Running as root, the unreadable spec (chmod 000) is skipped: root reads through any mode; the
//! read-only output folder is then a file system mounted read-only.

mod common;

use std::path::Path;

use common::brasa::{Ran, TestDir};
use common::spec::TinySpec;

/// The checks every case shares: the exit code, each of `names` on stderr, and no panic.
#[track_caller]
fn check(ran: Ran, code: i32, names: &[&str]) -> Ran {
    assert_eq!(ran.status.code(), Some(code), "exit {} where {code} was expected\n{ran}", ran.status);
    for name in names {
        assert!(ran.stderr.contains(name), "stderr lacks {name:?}\n{ran}");
    }
    assert!(!ran.stderr.contains("panicked") && !ran.stderr.contains("RUST_BACKTRACE"), "brasa panicked\n{ran}");
    assert!(!ran.stderr.contains("___figment"), "a spec key is shown with figment's internals\n{ran}");
    ran
}

fn tiny() -> TinySpec {
    TinySpec::new("bad", "data", 1)
}

/// A folder with a small image folder and the tiny spec.
fn folder() -> TestDir {
    TestDir::new().images("data", 4, 1, 16).spec(&tiny())
}

/// A folder with the tiny spec, `spec` instead, and `validate` run on it.
#[track_caller]
fn validate(spec: &TinySpec, code: i32, names: &[&str]) -> Ran {
    let dir = TestDir::new().images("data", 4, 1, 16).spec(spec);
    check(dir.brasa(["validate", "spec.toml"]).output(), code, names)
}

/// Appends `text` to the tiny spec, then validates.
#[track_caller]
fn validate_text(extra: &str, code: i32, names: &[&str]) -> Ran {
    let dir = TestDir::new().images("data", 4, 1, 16).file("spec.toml", format!("{}\n{extra}", tiny()));
    check(dir.brasa(["validate", "spec.toml"]).output(), code, names)
}

fn is_root() -> bool {
    std::process::Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

/// Every file under `dir` with its bytes, to show that a failing command changed nothing.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n != ".lock") {
                files.push((path.display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

fn short_run() -> TinySpec {
    tiny().insert("train.max_steps", 1)
}

// --- spec files ---------------------------------------------------------------------------------

#[test]
fn spec_missing() {
    check(folder().brasa(["validate", "nope.toml"]).output(), 2, &["nope.toml"]);
}

#[test]
fn spec_empty() {
    let dir = folder().file("empty.toml", "");
    check(dir.brasa(["validate", "empty.toml"]).output(), 2, &["empty.toml"]);
}

#[test]
fn spec_binary_garbage() {
    let dir = folder().file("garbage.toml", [0u8, 159, 146, 150, 255, 0, 1, 2, 200, 10, 13]);
    check(dir.brasa(["validate", "garbage.toml"]).output(), 2, &["garbage.toml"]);
}

#[test]
fn spec_invalid_toml_names_the_line() {
    let dir = folder().file("bad.toml", "[experiment]\nname = \"x\"\n[train\nepochs = 1\n");
    check(dir.brasa(["validate", "bad.toml"]).output(), 2, &["bad.toml", "line 3"]);
}

#[test]
fn spec_is_a_directory() {
    let dir = folder().file("adir.toml/x", "");
    check(dir.brasa(["validate", "adir.toml"]).output(), 2, &["adir.toml"]);
}

#[test]
fn spec_unreadable() {
    if is_root() {
        eprintln!("skipped: root reads a chmod 000 file");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = folder();
    std::fs::set_permissions(dir.path().join("spec.toml"), std::fs::Permissions::from_mode(0o000)).unwrap();
    check(dir.brasa(["validate", "spec.toml"]).output(), 2, &["spec.toml"]);
}

#[test]
fn spec_extends_a_missing_file() {
    let dir = TestDir::new().images("data", 4, 1, 16).file("spec.toml", format!("extends = \"base.toml\"\n{}", tiny()));
    check(dir.brasa(["validate", "spec.toml"]).output(), 2, &["base.toml"]);
}

#[test]
fn spec_extends_cycle() {
    let dir = TestDir::new()
        .images("data", 4, 1, 16)
        .file("a.toml", format!("extends = \"b.toml\"\n{}", tiny()))
        .file("b.toml", "extends = \"a.toml\"\n");
    check(dir.brasa(["validate", "a.toml"]).output(), 2, &["a.toml", "b.toml"]);
}

// --- wrong types and out-of-range values, section by section ----------------------------------

#[test]
fn wrong_types_name_key_and_value() {
    let cases: Vec<(TinySpec, &[&str])> = vec![
        (tiny().set("experiment.seed", "seven"), &["experiment.seed", "seven"]),
        (tiny().set("data.root", 3), &["`data.root` = 3", "expected path string"]),
        (tiny().set("data.split.validation", "half"), &["data.split.validation", "half"]),
        (tiny().set("augment.copies", "two"), &["augment.copies", "two"]),
        (tiny().set("augment.mode", "sideways"), &["augment.mode", "sideways"]),
        (tiny().set("preprocess.resize", "big"), &["preprocess.resize", "big"]),
        (tiny().set("model.arch", 5), &["model.arch"]),
        (tiny().set("train.epochs", "three"), &["train.epochs", "three"]),
        (tiny().set("train.optimizer.lr", "fast"), &["train.optimizer.lr", "fast"]),
        (tiny().set("train.schedule.name", "zigzag"), &["train.schedule.name", "zigzag"]),
        (tiny().set("runtime.threads", "many"), &["runtime.threads", "many"]),
        (tiny().insert("report", toml::toml! { formats = ["pdf"] }), &["`report.formats[0]` = \"pdf\"", "markdown, html"]),
    ];
    for (spec, names) in cases {
        validate(&spec, 2, names);
    }
}

#[test]
fn out_of_range_values_name_key_and_value() {
    let cases: Vec<(TinySpec, &[&str])> = vec![
        (tiny().set("data.split.validation", 1.5), &["data.split.validation", "1.5"]),
        (tiny().set("augment.chain[3].p", 2.0), &["augment.chain[3].p", "2"]),
        (tiny().set("preprocess.resize", toml::Value::Array(vec![0.into(), 16.into()])), &["preprocess.resize"]),
        (tiny().set("model.arch", "cvt-huge"), &["model.arch", "cvt-huge"]),
        (tiny().set("train.epochs", -1), &["train.epochs", "-1"]),
        (tiny().set("train.batch_size", 0), &["train.batch_size"]),
        (tiny().set("train.optimizer.lr", -1.0), &["train.optimizer.lr", "-1"]),
        (tiny().set("train.grad_clip", -1.0), &["train.grad_clip", "-1"]),
        (tiny().set("runtime.threads", 0), &["runtime.threads"]),
        (tiny().insert("report", toml::toml! { prediction_grid = -2 }), &["report.prediction_grid", "-2"]),
    ];
    for (spec, names) in cases {
        validate(&spec, 2, names);
    }
}

#[test]
fn bad_sweep_names_the_key() {
    validate_text("[sweep]\nmode = \"sideways\"\n\"train.epochs\" = [1]\n", 2, &["sweep", "sideways"]);
    validate_text("[sweep]\nmode = \"grid\"\n\"train.epochz\" = [1, 2]\n", 2, &["train.epochz"]);
}

#[test]
fn unknown_keys_at_each_depth() {
    validate(&tiny().insert("colour", "red"), 2, &["colour"]);
    validate(&tiny().rename("train.epochs", "epoch"), 2, &["train.epoch"]);
    validate(&tiny().insert("train.optimizer.lrr", 0.1), 2, &["train.optimizer.lrr"]);
    validate(&tiny().insert("augment.chain[3].pp", 0.1), 2, &["augment.chain[3]", "pp"]);
}

#[test]
fn bad_set_syntax() {
    let dir = folder();
    check(dir.brasa(["validate", "spec.toml", "--set", "foo"]).output(), 2, &["foo", "KEY=VALUE"]);
    check(dir.brasa(["validate", "spec.toml", "--set", "=3"]).output(), 2, &["--set"]);
    check(dir.brasa(["validate", "spec.toml", "--set", "train..epochs=3"]).output(), 2, &["train..epochs"]);
    check(dir.brasa(["validate", "spec.toml", "--set", "train.epochs=banana"]).output(), 2, &["train.epochs", "banana"]);
}

#[test]
fn bad_environment_override() {
    let dir = folder();
    check(dir.brasa(["validate", "spec.toml"]).env("BRASA_TRAIN__EPOCHS", "abc").output(), 2, &["BRASA_TRAIN__EPOCHS", "abc"]);
    check(dir.brasa(["validate", "spec.toml"]).env("BRASA_TRAIN__EPOCHZ", "3").output(), 2, &["epochz"]);
}

// --- data --------------------------------------------------------------------------------------

#[test]
fn data_root_missing() {
    // found while resolving the spec, so a spec error naming the key (before any run folder)
    let dir = TestDir::new().spec(&tiny());
    check(dir.brasa(["run", "spec.toml", "--out", "run"]).output(), 2, &["data.root", "does not exist"]);
    assert!(!dir.path().join("run").exists());
}

#[test]
fn data_root_empty() {
    let dir = TestDir::new().file("data/.keep", "").spec(&tiny());
    check(dir.brasa(["validate", "spec.toml"]).output(), 3, &["data/train"]);
}

#[test]
fn data_root_is_a_file() {
    let dir = TestDir::new().file("data", "not a folder").spec(&tiny());
    check(dir.brasa(["run", "spec.toml", "--out", "run"]).output(), 2, &["data.root", "is not a folder"]);
}

#[test]
fn class_folder_without_images() {
    let dir = folder();
    std::fs::create_dir_all(dir.path().join("data/train/eel")).unwrap();
    check(dir.brasa(["validate", "spec.toml"]).output(), 3, &["eel"]);
}

#[test]
fn one_class_only() {
    let dir = folder();
    for class in ["dog", "owl"] {
        for split in ["train", "test"] {
            std::fs::remove_dir_all(dir.path().join("data").join(split).join(class)).unwrap();
        }
    }
    // today a one-class folder is accepted (a run trains and scores 1.0): validate lists it, so
    // the user sees it (a batch that fits the six images left, so nothing else is wrong)
    let dir = dir.spec(&tiny().set("train.batch_size", 2));
    let ran = check(dir.brasa(["validate", "spec.toml"]).output(), 0, &[]);
    assert!(ran.stdout.contains("(1 classes;") && ran.stdout.contains("cat"), "{ran}");
}

/// A valid but odd image in the training folder: the run decodes it and trains one step.
#[track_caller]
fn runs_with_odd_image(name: &str, bytes: Vec<u8>) {
    let dir = TestDir::new().images("data", 4, 1, 16).file(&format!("data/train/cat/{name}"), bytes).spec(&short_run());
    check(dir.brasa(["run", "spec.toml", "--out", "run", "--quiet"]).output(), 0, &[]);
}

fn encode(image: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, format).unwrap();
    bytes.into_inner()
}

#[test]
fn image_1x1() {
    runs_with_odd_image("tiny.png", encode(image::RgbImage::new(1, 1).into(), image::ImageFormat::Png));
}

#[test]
fn image_10000x50() {
    runs_with_odd_image("long.png", encode(image::RgbImage::new(10000, 50).into(), image::ImageFormat::Png));
}

#[test]
fn image_16_bit_png() {
    let img = image::ImageBuffer::<image::Rgb<u16>, _>::from_fn(16, 16, |x, y| image::Rgb([x as u16 * 4000, y as u16 * 4000, 60000]));
    runs_with_odd_image("deep.png", encode(img.into(), image::ImageFormat::Png));
}

#[test]
fn image_grayscale() {
    let img = image::GrayImage::from_fn(16, 16, |x, y| image::Luma([(x * y) as u8]));
    runs_with_odd_image("gray.jpg", encode(img.into(), image::ImageFormat::Jpeg));
}

#[test]
fn image_cmyk_jpeg() {
    runs_with_odd_image("cmyk.jpg", std::fs::read(common::repo_path("tests/fixtures/bad_input/cmyk.jpg")).unwrap());
}

#[test]
fn image_palette_png() {
    // an 8x8 two-colour indexed PNG, written chunk by chunk
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let chunk = |png: &mut Vec<u8>, kind: &[u8], data: &[u8]| {
        png.extend((data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend(data);
        png.extend(&body);
        png.extend(crc32(&body).to_be_bytes());
    };
    chunk(&mut png, b"IHDR", &[0, 0, 0, 8, 0, 0, 0, 8, 8, 3, 0, 0, 0]);
    chunk(&mut png, b"PLTE", &[255, 0, 0, 0, 0, 255]);
    let rows: Vec<u8> = (0..8u8).flat_map(|y| std::iter::once(0).chain((0..8u8).map(move |x| (x + y) % 2))).collect();
    chunk(&mut png, b"IDAT", &zlib_stored(&rows));
    chunk(&mut png, b"IEND", &[]);
    assert!(image::load_from_memory(&png).is_ok(), "the palette PNG is valid");
    runs_with_odd_image("palette.png", png);
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// `data` as one stored (uncompressed) zlib block.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + x as u32) % 65521;
        b = (b + a) % 65521;
    }
    let len = data.len() as u16;
    let mut out = vec![0x78, 0x01, 1];
    out.extend(len.to_le_bytes());
    out.extend((!len).to_le_bytes());
    out.extend(data);
    out.extend(((b << 16) | a).to_be_bytes());
    out
}

#[test]
fn empty_jpg_stops_the_run_naming_it() {
    let dir = TestDir::new().images("data", 4, 1, 16).file("data/train/dog/empty.jpg", "").spec(&short_run());
    check(dir.brasa(["run", "spec.toml", "--out", "run", "--quiet"]).output(), 3, &["empty.jpg"]);
}

#[test]
fn truncated_jpeg_stops_the_run_naming_it() {
    let img = image::RgbImage::from_fn(16, 16, |x, y| image::Rgb([x as u8 * 10, y as u8 * 10, 0]));
    let mut bytes = encode(img.into(), image::ImageFormat::Jpeg);
    bytes.truncate(bytes.len() / 3);
    let dir = TestDir::new().images("data", 4, 1, 16).file("data/train/dog/cut.jpg", bytes).spec(&short_run());
    check(dir.brasa(["run", "spec.toml", "--out", "run", "--quiet"]).output(), 3, &["cut.jpg"]);
}

#[test]
fn symlink_loop_in_the_data_folder() {
    let dir = folder();
    std::os::unix::fs::symlink("../..", dir.path().join("data/train/cat/loop")).unwrap();
    check(dir.brasa(["validate", "spec.toml"]).output(), 3, &["data/train/cat", "loop"]);
}

#[test]
fn non_utf8_file_name() {
    use std::os::unix::ffi::OsStrExt;
    let dir = folder();
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.png");
    std::fs::copy(dir.path().join("data/train/cat/cat_000.png"), dir.path().join("data/train/cat").join(name)).unwrap();
    let dir = dir.spec(&short_run());
    check(dir.brasa(["run", "spec.toml", "--out", "run", "--quiet"]).output(), 0, &[]);
}

// --- outputs -----------------------------------------------------------------------------------

#[test]
fn read_only_output_folder() {
    let dir = folder().spec(&short_run());
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    if is_root() {
        // root writes through any mode: a file system mounted read-only stops it (where this
        // process may mount)
        #[cfg(target_os = "linux")]
        {
            let mounted = std::process::Command::new("mount").args(["-t", "tmpfs", "-o", "ro,size=64k", "tmpfs"]).arg(&ro).stderr(std::process::Stdio::null()).status().is_ok_and(|s| s.success());
            if mounted {
                let _unmount = Mounted(ro.clone());
                check(dir.brasa(["run", "spec.toml", "--out", "ro/run", "--quiet"]).output(), 5, &["ro/run", "Read-only file system"]);
                return;
            }
        }
        eprintln!("skipped: root writes into a read-only folder, and mounting a read-only one needs privileges this process lacks");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    check(dir.brasa(["run", "spec.toml", "--out", "ro/run", "--quiet"]).output(), 5, &["ro/run"]);
}

#[test]
fn out_is_an_existing_file() {
    let dir = folder().spec(&short_run()).file("taken", "a file");
    check(dir.brasa(["run", "spec.toml", "--out", "taken", "--quiet"]).output(), 5, &["taken"]);
    assert_eq!(std::fs::read(dir.path().join("taken")).unwrap(), b"a file");
}

/// A folder with one finished short run in `run`.
fn finished() -> TestDir {
    let dir = folder().spec(&short_run());
    check(dir.brasa(["run", "spec.toml", "--out", "run", "--quiet"]).output(), 0, &[]);
    dir
}

#[test]
fn run_folder_of_another_spec_and_a_finished_run_are_kept() {
    let dir = finished();
    let before = snapshot(&dir.path().join("run"));
    let other = short_run().set("experiment.name", "other").set("train.optimizer.lr", 1e-3);
    let dir = dir.file("other.toml", other.to_string());
    let ran = check(dir.brasa(["run", "other.toml", "--out", "run", "--quiet"]).output(), 5, &["run folder run"]);
    assert_eq!(before, snapshot(&dir.path().join("run")), "the other run's folder is untouched\n{ran}");
    let ran = dir.brasa(["run", "spec.toml", "--out", "run", "--quiet"]).output();
    check(ran, 5, &["run folder run", "finished"]);
    assert_eq!(before, snapshot(&dir.path().join("run")), "the finished run is never overwritten");
}

/// An unfinished run: a finished one-step run whose `meta.json` says it is still running, as a
/// run killed after its last checkpoint leaves it (no timing race with a kill).
fn unfinished() -> TestDir {
    let dir = finished();
    let meta = dir.path().join("run/meta.json");
    let mut value = common::read_json(&meta);
    value["status"] = "running".into();
    std::fs::write(&meta, serde_json::to_string_pretty(&value).unwrap()).unwrap();
    dir
}

/// The model checkpoint of `run` that resuming loads.
fn last_checkpoint(dir: &TestDir) -> std::path::PathBuf {
    let state = common::read_json(&dir.path().join("run/checkpoints/state.json"));
    dir.path().join("run/checkpoints").join(state["last_model"].as_str().expect("state.json names the last model"))
}

#[test]
fn unfinished_run_resumes() {
    // the control for the three cases below: untouched, the unfinished run resumes and finishes
    let dir = unfinished();
    check(dir.brasa(["run", "spec.toml", "--out", "run"]).output(), 0, &["resuming after epoch 1"]);
}

#[test]
fn truncated_checkpoint_then_resume() {
    let dir = unfinished();
    let checkpoint = last_checkpoint(&dir);
    let bytes = std::fs::read(&checkpoint).unwrap();
    std::fs::write(&checkpoint, &bytes[..bytes.len() / 2]).unwrap();
    let name = checkpoint.file_name().unwrap().to_string_lossy().into_owned();
    check(dir.brasa(["run", "spec.toml", "--out", "run", "--quiet"]).output(), 5, &[&name]);
}

#[test]
fn garbage_state_json_then_resume() {
    let dir = unfinished();
    std::fs::write(dir.path().join("run/checkpoints/state.json"), "{ not json").unwrap();
    check(dir.brasa(["run", "spec.toml", "--out", "run", "--quiet"]).output(), 5, &["state.json"]);
}

#[test]
fn garbage_meta_json_then_resume() {
    let dir = unfinished();
    std::fs::write(dir.path().join("run/meta.json"), [0xffu8, 0, 1]).unwrap();
    check(dir.brasa(["run", "spec.toml", "--out", "run", "--quiet"]).output(), 5, &["meta.json"]);
}

// --- command line ------------------------------------------------------------------------------

#[test]
fn unknown_subcommand_and_flag() {
    let dir = folder();
    check(dir.brasa(["trian", "spec.toml"]).output(), 2, &["trian"]);
    check(dir.brasa(["run", "spec.toml", "--no-such-flag"]).output(), 2, &["--no-such-flag"]);
}

#[test]
fn threads_zero() {
    check(folder().brasa(["run", "spec.toml", "--threads", "0"]).output(), 2, &["--threads"]);
}

#[test]
fn report_on_a_folder_that_is_not_a_run() {
    let dir = folder();
    check(dir.brasa(["report", "data"]).output(), 5, &["data", "not a brasa run folder"]);
    check(dir.brasa(["report", "nowhere"]).output(), 5, &["nowhere"]);
}

#[test]
fn predict_with_a_missing_checkpoint() {
    let dir = finished();
    let best = std::fs::read_dir(dir.path().join("run/checkpoints")).unwrap().map(|e| e.unwrap().path()).collect::<Vec<_>>();
    for path in best.iter().filter(|p| !p.ends_with("state.json")) {
        std::fs::remove_file(path).unwrap();
    }
    check(dir.brasa(["predict", "--run", "run", "data/test/cat"]).output(), 5, &["run folder run", "cannot load", ".bpk"]);
    check(dir.brasa(["predict", "--run", "nowhere", "data/test/cat"]).output(), 5, &["nowhere"]);
}

#[test]
fn compare_with_bad_arguments() {
    let dir = folder();
    check(dir.brasa(["compare", "data"]).output(), 2, &["RUN_DIR"]);
    check(dir.brasa(["compare", "data", "nowhere"]).output(), 5, &["data"]);
}

/// Unmounts the small file system of [`a_full_output_folder_stops_the_run_naming_the_file`]
/// however the test ends.
#[cfg(target_os = "linux")]
struct Mounted(std::path::PathBuf);

#[cfg(target_os = "linux")]
impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
#[cfg(target_os = "linux")]
fn a_full_output_folder_stops_the_run_naming_the_file() {
    let dir = TestDir::new().images("data", 6, 2, 16).spec(&TinySpec::new("full", "data", 1));
    let full = dir.path().join("full");
    std::fs::create_dir_all(&full).unwrap();
    // 256 KB: room for the run's first files, not for its first checkpoint (2.5 MB)
    let mounted = std::process::Command::new("mount").args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"]).arg(&full).stderr(std::process::Stdio::null()).status().is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: mounting a small tmpfs needs privileges this process lacks");
        return;
    }
    let _unmount = Mounted(full.clone());
    let ran = dir.brasa(["run", "spec.toml", "--out", "full/run"]).output();
    assert_eq!(ran.status.code(), Some(5), "{ran}");
    assert!(ran.stderr.contains("No space left on device") && ran.stderr.contains("full/run"), "{ran}");
    assert!(!ran.stderr.contains("panicked"), "{ran}");
}
