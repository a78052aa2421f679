//! Helpers shared by the integration tests: tiny image folders, specs, and running the CLI.
#![allow(dead_code)]

pub mod brasa;
pub mod hf;
pub mod http;
pub mod images;
pub mod spec;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use image::{Rgb, RgbImage};

pub const CLASSES: [&str; 3] = ["cat", "dog", "owl"];

/// An image folder `<root>/{train,test}/<class>/*.png` of small synthetic pictures whose class
/// shows in their colour and stripe direction, so a model can learn them in a few steps.
pub fn write_image_folder(root: &Path, train_per_class: usize, test_per_class: usize, size: u32) {
    for (split, count) in [("train", train_per_class), ("test", test_per_class)] {
        for (label, class) in CLASSES.iter().enumerate() {
            let dir = root.join(split).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..count {
                let image = RgbImage::from_fn(size + (i as u32 % 3), size, |x, y| {
                    let stripe = match label {
                        0 => x / 3 % 2,
                        1 => y / 3 % 2,
                        _ => (x + y) / 3 % 2,
                    } as u8;
                    let noise = ((x * 7 + y * 13 + i as u32 * 31) % 23) as u8;
                    let mut pixel = [40 + noise, 40 + noise, 40 + noise];
                    pixel[label] = 120 + stripe * 100 + noise;
                    Rgb(pixel)
                });
                image.save(dir.join(format!("{class}_{i:03}.png"))).unwrap();
            }
        }
    }
}

/// A spec for the synthetic folder at `root` (relative to the spec's folder or absolute).
pub fn tiny_spec(name: &str, root: &str, epochs: usize) -> String {
    format!(
        r#"
[experiment]
name = "{name}"
description = "tiny synthetic run"
seed = 7

[data]
root = "{root}"
train = "train"
test = "test"

[data.split]
validation = 0.25

[preprocess]
resize = [16, 16]

[augment]
mode = "append"
copies = 1
chain = [
  {{ op = "resize", size = [16, 16] }},
  {{ op = "random_rotation", degrees = 15 }},
  {{ op = "random_resized_crop", size = 16, scale = [0.8, 1.0] }},
  {{ op = "horizontal_flip", p = 0.5 }},
  {{ op = "vertical_flip", p = 0.5 }},
  {{ op = "color_jitter", brightness = 0.2, contrast = 0.2 }},
]

[model]
arch = "cvt-tiny"

[train]
epochs = {epochs}
batch_size = 8
optimizer = {{ lr = 2e-3, weight_decay = 0.01 }}
schedule = {{ name = "linear", warmup_steps = 2 }}
grad_clip = 1.0

[runtime]
threads = 2
"#
    )
}

/// The `brasa` binary built for these tests.
pub fn brasa() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_brasa"));
    // a developer's own BRASA_* variables must not leak into the tests
    for (key, _) in std::env::vars() {
        if key.starts_with("BRASA_") {
            command.env_remove(key);
        }
    }
    command
}

/// Runs `brasa` with `args` in `dir`.
pub fn run_in(dir: &Path, args: &[&str]) -> Output {
    brasa().current_dir(dir).args(args).output().expect("brasa runs")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[track_caller]
pub fn assert_success(output: &Output) {
    assert!(output.status.success(), "brasa failed\nstdout:\n{}\nstderr:\n{}", stdout(output), stderr(output));
}

/// The real dataset: `data/brain-tumor-mri` in the repository, else `../shared/data/...`.
pub fn real_data() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = [manifest.join("data/brain-tumor-mri"), manifest.join("../shared/data/brain-tumor-mri")];
    candidates.iter().find(|p| p.join("Training").is_dir()).cloned().unwrap_or_else(|| {
        panic!(
            "the brain-MRI dataset is needed for this test: link it as data/brain-tumor-mri \
             (see data/README.md); looked in {candidates:?}"
        )
    })
}

/// The header row of a CSV file.
pub fn csv_header(path: &Path) -> Vec<String> {
    let mut reader = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    reader.headers().unwrap().iter().map(String::from).collect()
}

/// All data rows of a CSV file.
pub fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    let mut reader = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    reader.records().map(|r| r.unwrap().iter().map(String::from).collect()).collect()
}

/// A tensor read from a safetensors fixture: shape and values (f32, or u8 widened to f32).
pub struct FixtureTensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// Every tensor of a safetensors file.
pub fn read_safetensors(path: &Path) -> std::collections::HashMap<String, FixtureTensor> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    tensors
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = match view.dtype() {
                safetensors::Dtype::F32 => {
                    view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
                }
                safetensors::Dtype::U8 => view.data().iter().map(|&b| b as f32).collect(),
                other => panic!("{name}: unexpected dtype {other:?}"),
            };
            (name, FixtureTensor { shape: view.shape().to_vec(), values })
        })
        .collect()
}

/// The fixture folder `tests/fixtures/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// A tiny HTTP server on 127.0.0.1 for the tests: `respond` gets each request's head (request
/// line and headers) and returns the whole response. Runs until the test process ends.
pub fn serve_http(respond: impl Fn(&str) -> Vec<u8> + Send + 'static) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buffer[..n]),
                }
            }
            let _ = stream.write_all(&respond(&String::from_utf8_lossy(&request)));
        }
    });
    port
}
