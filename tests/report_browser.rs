//! The HTML report checked in a real browser: headless Chromium (Debian's `chromium`, installed
//! by `.ci/run`) renders a copy with a check script injected, then takes screenshots. Asserted:
//! the page rendered (non-blank screenshot), every image loaded, no console or script errors, no
//! request leaves the file, and a phone-width window needs no horizontal scrolling.
//!
//! Without a browser the test fails, naming what to install; `BRASA_SKIP_BROWSER=1` skips it
//! explicitly (printing so). `BRASA_REPORT_HTML=path/to/report.html` checks that report instead
//! of one from a fresh synthetic run (e.g. a real run's).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::brasa::TestDir;
use common::images;
use common::spec::TinySpec;

/// Collects errors from the first moment, then reports what loaded into `<pre id="brasa-check">`.
const CHECK_SCRIPT: &str = r#"<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push('error: ' + (e.message || (e.target && (e.target.src || e.target.href)) || e.type)), true);
window.addEventListener('unhandledrejection', e => window.__errors.push('rejection: ' + e.reason));
const consoleError = console.error;
console.error = (...args) => { window.__errors.push('console: ' + args.join(' ')); consoleError(...args); };
window.addEventListener('load', () => {
  const load = href => new Promise(done => { const img = new Image(); img.onload = () => done(img.naturalWidth > 0); img.onerror = () => done(false); img.src = href; });
  const html = [...document.images];
  const svg = [...document.querySelectorAll('svg image')];
  Promise.all(svg.map(el => load(el.getAttribute('href') || el.getAttribute('xlink:href')))).then(svgLoaded => {
    const report = {
      html_images: html.length,
      html_broken: html.filter(i => !(i.complete && i.naturalWidth > 0)).length,
      svg_images: svg.length,
      svg_broken: svgLoaded.filter(ok => !ok).length,
      svgs: document.querySelectorAll('svg').length,
      text: document.body.innerText.length,
      overflow: document.documentElement.scrollWidth - window.innerWidth,
      requests: performance.getEntriesByType('resource').map(r => r.name).filter(n => !n.startsWith('data:')),
      errors: window.__errors,
    };
    const pre = document.createElement('pre');
    pre.id = 'brasa-check';
    pre.textContent = JSON.stringify(report);
    document.body.appendChild(pre);
  });
});
</script>"#;

fn browser() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("BRASA_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Runs the browser headless on `page`; returns stdout and stderr.
fn chromium(browser: &Path, page: &Path, window: (u32, u32), extra: &[&str]) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let output = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars", "--enable-logging=stderr", "--v=0"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--window-size={},{}", window.0, window.1))
        .arg("--virtual-time-budget=15000")
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("the browser starts");
    assert!(output.status.success(), "{} failed: {}", browser.display(), String::from_utf8_lossy(&output.stderr));
    (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

fn check(browser: &Path, html: &str, dir: &Path, window: (u32, u32)) -> serde_json::Value {
    let page = dir.join(format!("checked-{}.html", window.0));
    let head = html.find("<head>").expect("the report has a <head>") + "<head>".len();
    std::fs::write(&page, format!("{}{CHECK_SCRIPT}{}", &html[..head], &html[head..])).unwrap();
    let (dom, log) = chromium(browser, &page, window, &["--dump-dom"]);
    // console messages of the page as Chromium logs them
    let console_errors: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE") && (l.contains("ERROR") || l.contains("Uncaught"))).collect();
    assert!(console_errors.is_empty(), "console errors: {console_errors:#?}");
    let start = dom.find("<pre id=\"brasa-check\">").expect("the check script ran") + "<pre id=\"brasa-check\">".len();
    let end = start + dom[start..].find("</pre>").unwrap();
    let json = dom[start..end].replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

/// Share of pixels that are not (near) white, and the number of distinct colours.
fn ink(png: &Path) -> (f64, usize) {
    let image = image::open(png).unwrap().to_rgb8();
    let dark = image.pixels().filter(|p| p.0.iter().any(|&c| c < 230)).count();
    let colours: std::collections::HashSet<[u8; 3]> = image.pixels().map(|p| p.0).collect();
    (dark as f64 / image.pixels().len() as f64, colours.len())
}

#[test]
fn html_report_renders_in_chromium() {
    let Some(browser) = browser() else {
        if std::env::var_os("BRASA_SKIP_BROWSER").is_some() {
            eprintln!("BRASA_SKIP_BROWSER set: the browser check of the HTML report is skipped");
            return;
        }
        panic!("no Chromium found (install Debian's `chromium`, or set BRASA_CHROMIUM=/path/to/chrome; BRASA_SKIP_BROWSER=1 skips this test)");
    };
    let dir = TestDir::new();
    let given = std::env::var_os("BRASA_REPORT_HTML").map(PathBuf::from);
    let report = match &given {
        Some(path) => path.clone(),
        None => {
            images::striped_folder(&dir.path().join("data"), 12, 4, 20);
            // a user-provided string that must come out escaped
            let spec = TinySpec::new("browser", "data", 2).set("experiment.description", "<script>alert(1)</script> & <b>bold</b>");
            spec.write(&dir.path().join("spec.toml"));
            dir.brasa(["run", "spec.toml", "--out", "run"]).succeeds();
            dir.path().join("run/report.html")
        }
    };
    let html = std::fs::read_to_string(&report).unwrap();
    eprintln!("checking {} ({} bytes)", report.display(), html.len());
    if given.is_none() {
        assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt; &amp; &lt;b&gt;bold&lt;&#x2f;b&gt;"), "the description is escaped");
    }
    assert!(!html.contains("<script"), "the report carries no script");
    for attribute in ["src=\"http", "href=\"http", "src='http", "href='http", "url(http"] {
        assert!(!html.contains(attribute), "external reference {attribute}");
    }

    let wide = check(&browser, &html, dir.path(), (1280, 2000));
    assert_eq!(wide["errors"], serde_json::json!([]), "{wide}");
    assert_eq!(wide["requests"], serde_json::json!([]), "{wide}");
    assert_eq!(wide["html_broken"], 0, "{wide}");
    assert_eq!(wide["svg_broken"], 0, "{wide}");
    // the prediction grid and the mistakes gallery embed the test images
    assert!(wide["svg_images"].as_u64().unwrap() >= 12, "{wide}");
    assert!(wide["svgs"].as_u64().unwrap() >= 10, "{wide}");
    assert!(wide["text"].as_u64().unwrap() > 2000, "{wide}");
    let narrow = check(&browser, &html, dir.path(), (390, 844));
    assert!(narrow["overflow"].as_i64().unwrap() <= 0, "horizontal scrolling on a phone-width window: {narrow}");
    eprintln!("rendered: {wide}");

    for (width, height) in [(1280, 2400), (390, 2400)] {
        let png = dir.path().join(format!("screenshot-{width}.png"));
        chromium(&browser, &report, (width, height), &[&format!("--screenshot={}", png.display())]);
        let (ink, colours) = ink(&png);
        assert!(ink > 0.03 && colours > 50, "the {width}px screenshot looks blank: {:.1}% ink, {colours} colours", ink * 100.0);
        eprintln!("screenshot {width}x{height}: {:.1}% ink, {colours} colours", ink * 100.0);
    }
}
