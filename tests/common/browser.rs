//! Pages checked in headless Chromium (Debian's `chromium`, installed by `.ci/run`): each page
//! gets a check script injected into its head, is opened in an iframe of the width asked for —
//! headless Chromium's windows are at least 500 px wide, so a 390 px phone needs a frame — and
//! the script's JSON report comes back through `postMessage`. Every page of a check shares one
//! browser session (one start-up), which also takes a screenshot of them side by side.
//!
//! [`browser`] finds the browser (`BRASA_CHROMIUM`, else `chromium` and friends on `PATH`);
//! without one a test fails naming what to install, unless `BRASA_SKIP_BROWSER=1` skips it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Collects errors from the first moment; defines `brasaTextSizes()` (the rendered size of every
/// text) and `brasaReport(object)` (sends the check's report to the frame's parent).
pub const PRELUDE: &str = r#"<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push('error: ' + (e.message || (e.target && (e.target.src || e.target.href)) || e.type)), true);
window.addEventListener('unhandledrejection', e => window.__errors.push('rejection: ' + e.reason));
const consoleError = console.error;
console.error = (...args) => { window.__errors.push('console: ' + args.join(' ')); consoleError(...args); };
// The smallest rendered text: SVG text at its font size times the scale it is drawn at (its
// screen matrix), HTML text at its computed size; and each SVG's smallest, by its caption.
window.brasaTextSizes = () => {
  const visible = e => e.getClientRects().length > 0;
  const charts = [...document.querySelectorAll('svg')].map((svg, k) => {
    const texts = [...svg.querySelectorAll('text')].filter(t => t.textContent.trim() && visible(t));
    const sizes = texts.map(t => {
      const m = t.getScreenCTM();
      const r = t.getBoundingClientRect();
      const rotated = Math.abs(m.b) > Math.abs(m.a);
      return { px: parseFloat(getComputedStyle(t).fontSize) * Math.hypot(m.a, m.b), box: rotated ? r.width : r.height };
    });
    const figure = svg.closest('figure');
    const caption = figure && figure.querySelector('figcaption');
    const name = caption ? caption.textContent : (svg.getAttribute('aria-label') || (texts[0] ? texts[0].textContent.trim() : 'svg ' + k));
    return {
      chart: name.slice(0, 48),
      width: Math.round(svg.getBoundingClientRect().width),
      min_px: sizes.length ? +Math.min(...sizes.map(s => s.px)).toFixed(2) : null,
      min_box: sizes.length ? +Math.min(...sizes.map(s => s.box)).toFixed(2) : null,
    };
  }).filter(c => c.min_px !== null);
  let html = Infinity, smallest = '';
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (!node.textContent.trim() || !parent || parent.closest('svg, script, style, #brasa-check') || !visible(parent)) continue;
    const px = parseFloat(getComputedStyle(parent).fontSize);
    if (px < html) { html = px; smallest = node.textContent.trim().slice(0, 40); }
  }
  const inputs = [...document.querySelectorAll('input, select, button')].filter(visible).map(e => parseFloat(getComputedStyle(e).fontSize));
  return {
    svg_min_px: charts.length ? Math.min(...charts.map(c => c.min_px)) : null,
    svg_min_box: charts.length ? Math.min(...charts.map(c => c.min_box)) : null,
    html_min_px: html === Infinity ? null : html,
    html_smallest: smallest,
    controls_min_px: inputs.length ? Math.min(...inputs) : null,
    charts,
  };
};
window.brasaReport = report => {
  report.errors = window.__errors;
  report.viewport = window.innerWidth;
  report.overflow = document.documentElement.scrollWidth - window.innerWidth;
  const text = JSON.stringify(report);
  if (window.parent !== window) window.parent.postMessage(text, '*');
  const pre = document.createElement('pre');
  pre.id = 'brasa-check';
  pre.textContent = text;
  document.body.appendChild(pre);
};
</script>"#;

pub fn browser() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("BRASA_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// The browser, or `None` when the test is to be skipped (`BRASA_SKIP_BROWSER`, said on stderr);
/// panics without either.
pub fn browser_or_skip(what: &str) -> Option<PathBuf> {
    match browser() {
        Some(browser) => Some(browser),
        None if std::env::var_os("BRASA_SKIP_BROWSER").is_some() => {
            eprintln!("BRASA_SKIP_BROWSER set: the browser check of {what} is skipped");
            None
        }
        None => panic!("no Chromium found (install Debian's `chromium`, or set BRASA_CHROMIUM=/path/to/chrome; BRASA_SKIP_BROWSER=1 skips this test)"),
    }
}

/// Runs the browser headless on `page`; returns stdout and stderr.
pub fn chromium(browser: &Path, page: &Path, window: (u32, u32), extra: &[&str]) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let output = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars", "--enable-logging=stderr", "--v=0"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--window-size={},{}", window.0, window.1))
        .arg("--virtual-time-budget=30000")
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("the browser starts");
    assert!(output.status.success(), "{} failed: {}", browser.display(), String::from_utf8_lossy(&output.stderr));
    (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// A page to open: its HTML, and the frame it is shown in.
pub struct Page<'a> {
    pub html: &'a str,
    /// Where the checked copy is written (beside the original, so its relative links resolve).
    pub copy: PathBuf,
    pub width: u32,
    pub height: u32,
}

/// Opens every page in one session, each with [`PRELUDE`] and `script` injected at the start of
/// its head (`script` must end in a `brasaReport(…)` call); returns each page's report, in order,
/// and writes a screenshot of them side by side to `screenshot`. Console errors fail the check.
pub fn check(browser: &Path, pages: &[Page], script: &str, screenshot: &Path) -> Vec<serde_json::Value> {
    let dir = screenshot.parent().unwrap();
    let mut frames = String::new();
    for (k, page) in pages.iter().enumerate() {
        let head = page.html.find("<head>").expect("the page has a <head>") + "<head>".len();
        std::fs::write(&page.copy, format!("{}{PRELUDE}{script}{}", &page.html[..head], &page.html[head..])).unwrap();
        frames.push_str(&format!(
            "<iframe id=\"frame-{k}\" src=\"file://{}\" width=\"{}\" height=\"{}\" style=\"border:0;vertical-align:top;margin-right:10px\"></iframe>",
            page.copy.display(),
            page.width,
            page.height
        ));
    }
    let wrapper = dir.join("frames.html");
    std::fs::write(
        &wrapper,
        format!(
            "<!DOCTYPE html><html><body style=\"margin:0\">{frames}<script>\n\
             addEventListener('message', e => {{\n\
               const k = [...document.querySelectorAll('iframe')].findIndex(f => f.contentWindow === e.source);\n\
               const pre = document.createElement('pre'); pre.id = 'report-' + k; pre.textContent = e.data; document.body.appendChild(pre);\n\
             }});\n</script></body></html>"
        ),
    )
    .unwrap();
    let width = pages.iter().map(|p| p.width + 10).sum::<u32>().max(500);
    let height = pages.iter().map(|p| p.height).max().unwrap_or(600);
    let (dom, log) = chromium(browser, &wrapper, (width, height), &["--dump-dom", &format!("--screenshot={}", screenshot.display())]);
    let console_errors: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE") && (l.contains("ERROR") || l.contains("Uncaught"))).collect();
    assert!(console_errors.is_empty(), "console errors: {console_errors:#?}");
    (0..pages.len())
        .map(|k| {
            let tag = format!("<pre id=\"report-{k}\">");
            let start = dom.find(&tag).unwrap_or_else(|| panic!("page {k} sent no report: {dom:.2000}")) + tag.len();
            let end = start + dom[start..].find("</pre>").unwrap();
            let json = dom[start..end].replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&amp;", "&");
            serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"))
        })
        .collect()
}

/// Share of pixels of a screenshot that are not (near) white, and its number of distinct colours.
pub fn ink(png: &Path) -> (f64, usize) {
    let image = image::open(png).unwrap().to_rgb8();
    let dark = image.pixels().filter(|p| p.0.iter().any(|&c| c < 230)).count();
    let colours: std::collections::HashSet<[u8; 3]> = image.pixels().map(|p| p.0).collect();
    (dark as f64 / image.pixels().len() as f64, colours.len())
}
