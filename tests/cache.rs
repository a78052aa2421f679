//! `data.cache`: where a run keeps its decoded images. Every mode gives the same numbers, the
//! disk cache is shared by runs and processes (a second run decodes nothing), and `brasa cache`
//! shows and prunes it.

mod common;

use std::path::Path;

use common::brasa::TestDir;
use common::images::CLASSES;
use common::spec::TinySpec;
use common::read;

/// The tiny run with its augmentation source kept at the stored size (the chain's leading resize
/// removed, so there are two recipes: the model input and the source), online augmentation
/// with two copies, and `data.cache = mode`.
fn spec(mode: &str) -> TinySpec {
    TinySpec::new("tiny", "data", 2)
        .remove("augment.chain[0]")
        .set("augment.mode", "online")
        .set("augment.copies", 2)
        .insert("data.cache", mode)
}

#[test]
fn memory_disk_and_none_give_byte_identical_results() {
    let mut dir = TestDir::new().images("data", 8, 3, 20);
    for mode in ["memory", "disk", "none"] {
        dir = dir.file(&format!("{mode}.toml"), spec(mode).to_string());
        dir.brasa(["run".to_string(), format!("{mode}.toml"), "--out".into(), mode.into()])
        .env("BRASA_CACHE", dir.path().join("cache"))
        .stderr_contains(format!("data.cache = {mode}"))
        .succeeds();
    }
    let runs = |file: &str| ["memory", "disk", "none"].map(|mode| read(&dir.path().join(mode).join(file)));
    for file in ["test_predictions.csv", "val_predictions.csv", "steps.csv", "split.csv", "duplicates.csv"] {
        let [memory, disk, none] = runs(file);
        assert!(!memory.is_empty());
        assert_eq!(disk, memory, "{file}: disk differs from memory");
        assert_eq!(none, memory, "{file}: none differs from memory");
    }
    // the spec each run records keeps its mode, and a run resumes whatever the mode
    assert!(read(&dir.path().join("disk/spec.toml")).contains("cache = \"disk\""));
}

/// Runs `brasa run spec.toml --out <out>` with the cache in `cache`.
fn run(dir: &TestDir, out: &str, cache: &Path) -> String {
    dir.brasa(["run", "spec.toml", "--out", out]).env("BRASA_CACHE", cache).succeeds().stderr
}

#[test]
fn runs_share_the_disk_cache_a_second_run_decodes_nothing_and_prune_empties_it() {
    let dir = TestDir::new().images("data", 8, 3, 20).spec(&TinySpec::new("tiny", "data", 1).insert("data.cache", "disk"));
    let cache = dir.path().join("shared cache");
    let images = CLASSES.len() * (8 + 3);
    // entries are per content: files with the same bytes share one
    let contents: std::collections::HashSet<Vec<u8>> = walk(&dir.path().join("data")).iter().map(|f| std::fs::read(f).unwrap()).collect();

    // two processes fill the same cache at once
    let logs: Vec<String> = std::thread::scope(|scope| {
        let runs: Vec<_> = ["a", "b"].map(|out| scope.spawn({
            let (dir, cache) = (&dir, &cache);
            move || run(dir, out, cache)
        })).into_iter().collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    for log in &logs {
        assert!(log.contains(&format!("data.cache = disk: {images} images")), "{log}");
    }
    assert_eq!(read(&dir.path().join("a/test_predictions.csv")), read(&dir.path().join("b/test_predictions.csv")));

    let info = dir.brasa(["cache", "info", "--dir"]).args([&cache]).succeeds().stdout;
    assert!(info.contains(&format!("({} images in 1 recipe(s)", contents.len())), "one entry per content, whoever wrote it:\n{info}");
    assert!(info.contains("resize to 16x16 (bilinear)") && !info.contains("temporary"), "{info}");

    let third = run(&dir, "c", &cache);
    assert!(third.contains(&format!("0 decoded now and {images} read from the cache")), "{third}");
    assert_eq!(read(&dir.path().join("a/test_predictions.csv")), read(&dir.path().join("c/test_predictions.csv")));

    dir.brasa(["cache", "prune", "--older-than", "1d", "--dir"]).args([&cache]).stdout_contains("removed 0 image(s)").succeeds();
    dir.brasa(["cache", "prune", "--all", "--dir"]).args([&cache]).stdout_contains(format!("removed {} image(s)", contents.len())).succeeds();
    dir.brasa(["cache", "info", "--dir"]).args([&cache]).stdout_contains("(0 images in 0 recipe(s)").succeeds();
    dir.brasa(["cache", "prune", "--dir"]).args([&cache]).stderr_contains("--older-than").exits_with(2);
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { files.extend(walk(&path)) } else { files.push(path) }
    }
    files
}

#[test]
fn auto_says_what_it_chose_and_a_bad_mode_names_the_key() {
    let dir = TestDir::new().images("data", 4, 1, 20).spec(&TinySpec::new("tiny", "data", 1).insert("train.max_steps", 1));
    dir.brasa(["run", "spec.toml", "--out", "run"])
        .stderr_contains("data.cache = auto: the decoded images need about")
        .stderr_contains("keeping them in memory")
        .succeeds();
    assert!(!dir.path().join("reports/.cache").exists(), "memory mode writes no cache");
    dir.brasa(["cache", "info"]).stdout_contains("(0 images: no cache there yet)").succeeds();
    dir.brasa(["cache", "prune", "--all"]).stdout_contains("removed 0 image(s)").succeeds();
    assert!(!dir.path().join("reports/.cache").exists(), "looking creates nothing");
    dir.brasa(["validate", "spec.toml", "--set", "data.cache=\"ram\""]).stderr_contains("data.cache").exits_with(2);
}

/// `brasa cache info | prune --gpu` in a build with a GPU backend: cubecl's environment database
/// (autotune results, CUDA's compiled kernels) is found where cubecl keeps it for a run started in
/// that folder — the outermost Cargo project's `target/environment`, else the user cache, under
/// the environment's name — and only its files are removed.
#[cfg(any(feature = "gpu-backend", feature = "cuda"))]
#[test]
fn the_gpu_cache_is_found_where_cubecl_keeps_it_and_prune_gpu_removes_only_it() {
    use common::brasa::Brasa;
    let dir = TestDir::new()
        .file("xdg/cubecl/default.db", vec![0u8; 2_000_000])
        .file("xdg/cubecl/default.db-wal", vec![0u8; 500_000])
        .file("xdg/cubecl/h100.db", [1u8; 10])
        .file("project/Cargo.toml", "[package]\nname = \"p\"\n")
        .file("project/target/environment/default.db", [2u8; 10])
        .file("project/experiments/spec.toml", "");
    let xdg = dir.path().join("xdg");
    let brasa = |cwd: &Path, args: &[&str]| {
        Brasa::new(cwd, args).env("XDG_CACHE_HOME", &xdg).env_remove("CUBECL_ENVIRONMENT")
    };
    // outside a Cargo project: the user cache
    brasa(dir.path(), &["cache", "info"])
        .stdout_contains("xdg/cubecl/default.db (GPU autotune results and compiled kernels for runs started here, 2.5 MB")
        .succeeds();
    // another environment's name, another database
    brasa(dir.path(), &["cache", "prune", "--gpu"])
        .env("CUBECL_ENVIRONMENT", "h100")
        .stdout_contains("xdg/cubecl/h100.db: removed 1 file(s)")
        .succeeds();
    assert!(!xdg.join("cubecl/h100.db").exists());
    // in a Cargo project, from a folder below it too: its target/environment
    brasa(&dir.path().join("project/experiments"), &["cache", "prune", "--gpu"])
        .stdout_contains("target/environment/default.db: removed 1 file(s)")
        .succeeds();
    assert!(!dir.path().join("project/target/environment/default.db").exists());
    assert!(xdg.join("cubecl/default.db").exists() && xdg.join("cubecl/default.db-wal").exists());
    // images and GPU together; the database with its write-ahead file
    brasa(dir.path(), &["cache", "prune", "--all", "--gpu"])
        .stdout_contains("removed 0 image(s)")
        .stdout_contains("xdg/cubecl/default.db: removed 2 file(s) (2.5 MB)")
        .succeeds();
    brasa(dir.path(), &["cache", "info"]).stdout_contains("none yet for runs started here").succeeds();
    brasa(dir.path(), &["cache", "prune", "--all", "--older-than", "1d"]).stderr_contains("--older-than").exits_with(2);
}

/// `brasa cache export | import`: what a GPU cache holds travels as a cubecl bundle — all of it
/// but cubecl's records, or CUDA's compiled kernels alone — and fills another machine's cache
/// without replacing what is there; what is not a bundle, or no cache at all, is a clear error.
#[cfg(any(feature = "gpu-backend", feature = "cuda"))]
#[test]
fn a_gpu_cache_travels_as_a_bundle_whole_or_kernels_only() {
    use common::brasa::Brasa;
    use cubecl_environment::persistence::{Access, Database, Origin};
    let dir = TestDir::new().file("notes.txt", "not a bundle");
    let (here, there) = (dir.path().join("here"), dir.path().join("there"));
    // a cache as a CUDA run leaves it: autotune results, kernels with their second line, records
    let namespaces = [
        ("autotune/0.11.3/device-0-0-cuda/matmul-tune", 2),
        ("cuda/0.11.3/ptx_sm90-cpp", 3),
        ("cuda-second-line/0.11.3/ptx_sm90-cpp", 3),
        ("records/v1/sessions", 1),
    ];
    std::fs::create_dir_all(here.join("cubecl")).unwrap();
    {
        let database = Database::open_at(&here.join("cubecl/default.db"), Access::ReadWrite).unwrap();
        for (namespace, entries) in namespaces {
            for key in 0..entries {
                database.insert(namespace, &[key], format!("{namespace} {key}").as_bytes(), Origin::Local);
            }
        }
    }
    let brasa = |cache: &Path, args: &[&str]| Brasa::new(dir.path(), args).env("XDG_CACHE_HOME", cache).env_remove("CUBECL_ENVIRONMENT");
    brasa(&there, &["cache", "export", "none.bundle"]).stderr_contains("no GPU cache here to export").exits_with(3);
    brasa(&here, &["cache", "export", "all.bundle"])
        .stdout_contains("here/cubecl/default.db → all.bundle (3 compiled kernel(s), 2 autotune result(s),")
        .succeeds();
    brasa(&here, &["cache", "export", "kernels.bundle", "--kernels-only"])
        .stdout_contains("→ kernels.bundle (3 compiled kernel(s), 0 autotune result(s),")
        .succeeds();
    // another machine takes the kernels; importing again adds nothing, the whole bundle its autotune results
    brasa(&there, &["cache", "import", "kernels.bundle"])
        .stdout_contains("kernels.bundle → there/cubecl/default.db (3 compiled kernel(s), 0 autotune result(s): 6 entries added, 0 already there; the cache now ")
        .succeeds();
    brasa(&there, &["cache", "import", "kernels.bundle"]).stdout_contains(": 0 entries added, 6 already there; the cache now ").succeeds();
    brasa(&there, &["cache", "import", "all.bundle"]).stdout_contains(": 2 entries added, 6 already there; the cache now ").succeeds();
    // what was written is folded into the database file, no write-ahead log left beside it
    let wal = std::fs::metadata(there.join("cubecl/default.db-wal")).map(|m| m.len()).unwrap_or(0);
    assert_eq!(wal, 0, "the import's write-ahead log is folded into the database");
    let database = Database::open_at(&there.join("cubecl/default.db"), Access::ReadOnly).unwrap();
    let mut held: Vec<(String, u64)> = database.summary().into_iter().map(|s| (s.namespace, s.entries)).collect();
    held.sort();
    let mut sent: Vec<(String, u64)> = namespaces[..3].iter().map(|(n, e)| (n.to_string(), *e as u64)).collect();
    sent.sort();
    assert_eq!(held, sent, "everything but the records travels");
    let mut value = None;
    database.scan("cuda/0.11.3/ptx_sm90-cpp", &mut |key, v| if key == [1] { value = Some(v.to_vec()) });
    assert_eq!(value.as_deref(), Some(&b"cuda/0.11.3/ptx_sm90-cpp 1"[..]));
    drop(database);
    // a run goes on writing into the folded cache as into any other
    let database = Database::open_at(&there.join("cubecl/default.db"), Access::ReadWrite).unwrap();
    database.insert("cuda/0.11.3/ptx_sm90-cpp", &[7], b"compiled later", Origin::Local);
    assert_eq!(database.get("cuda/0.11.3/ptx_sm90-cpp", &[7]).as_deref(), Some(&b"compiled later"[..]));
    drop(database);
    brasa(&there, &["cache", "export", "again.bundle", "--kernels-only"]).stdout_contains("(4 compiled kernel(s), 0 autotune result(s),").succeeds();
    brasa(&there, &["cache", "import", "notes.txt"]).stderr_contains("notes.txt: not a GPU cache bundle").exits_with(3);
    brasa(&there, &["cache", "import", "missing.bundle"]).stderr_contains("missing.bundle").exits_with(3);
}

/// `brasa cache import` while a run started in the same folder has the cache open (another
/// process, writing before and after): nothing either side wrote is lost, and the cache opens
/// and takes writes afterwards.
#[cfg(any(feature = "gpu-backend", feature = "cuda"))]
#[test]
fn an_import_beside_a_run_holding_the_cache_open_loses_nothing() {
    use common::brasa::Brasa;
    use cubecl_environment::persistence::{Access, Database, Origin};
    const KERNELS: &str = "cuda/0.11.3/ptx_sm90-cpp";
    let dir = TestDir::new();
    let (here, there) = (dir.path().join("here"), dir.path().join("there"));
    for cache in [&here, &there] {
        std::fs::create_dir_all(cache.join("cubecl")).unwrap();
    }
    {
        let database = Database::open_at(&here.join("cubecl/default.db"), Access::ReadWrite).unwrap();
        for key in 0..50u8 {
            database.insert(KERNELS, &[key], &[key; 4096], Origin::Local);
        }
    }
    let brasa = |cache: &Path, args: &[&str]| Brasa::new(dir.path(), args).env("XDG_CACHE_HOME", cache).env_remove("CUBECL_ENVIRONMENT");
    brasa(&here, &["cache", "export", "k.bundle"]).succeeds();
    // the run: its cache open, written before the import and after it
    let run = Database::open_at(&there.join("cubecl/default.db"), Access::ReadWrite).unwrap();
    run.insert(KERNELS, &[200], b"before", Origin::Local);
    brasa(&there, &["cache", "import", "k.bundle"]).stdout_contains(": 50 entries added, 0 already there; the cache now ").succeeds();
    run.insert(KERNELS, &[201], b"after", Origin::Local);
    assert_eq!(run.get(KERNELS, &[7]).as_deref(), Some(&[7u8; 4096][..]), "the run sees what was imported");
    drop(run);
    let reopened = Database::open_at(&there.join("cubecl/default.db"), Access::ReadWrite).unwrap();
    let mut keys = Vec::new();
    reopened.scan(KERNELS, &mut |key, _| keys.push(key.to_vec()));
    assert_eq!(keys.len(), 52, "the 50 imported and the run's two");
    assert_eq!(reopened.get(KERNELS, &[200]).as_deref(), Some(&b"before"[..]));
    assert_eq!(reopened.get(KERNELS, &[201]).as_deref(), Some(&b"after"[..]));
    reopened.insert(KERNELS, &[202], b"later", Origin::Local);
    assert_eq!(reopened.get(KERNELS, &[202]).as_deref(), Some(&b"later"[..]));
}
