//! The HTML report checked in a real browser: headless Chromium (Debian's `chromium`, installed
//! by `.ci/run`) renders a copy with a check script injected, at a desktop width and in a 390 px
//! phone frame, in one session that also takes a screenshot. Asserted: the page rendered
//! (non-blank screenshot), every image loaded, no console or script errors, no request leaves the
//! file, a phone-width window needs no horizontal scrolling, and every text — chart labels
//! included, measured as rendered — is at least 11 px at both widths.
//!
//! Without a browser the test fails, naming what to install; `BRASA_SKIP_BROWSER=1` skips it
//! explicitly (printing so). `BRASA_REPORT_HTML=path/to/report.html` checks that report instead
//! of one from a fresh synthetic run (e.g. a real run's).

mod common;

use std::path::PathBuf;

use common::brasa::TestDir;
use common::browser::{self, Page};
use common::images;
use common::spec::TinySpec;

/// Waits for the images, then reports what loaded and how big the text is.
const CHECK_SCRIPT: &str = r#"<script>
window.addEventListener('load', () => {
  const load = href => new Promise(done => { const img = new Image(); img.onload = () => done(img.naturalWidth > 0); img.onerror = () => done(false); img.src = href; });
  const html = [...document.images];
  const svg = [...document.querySelectorAll('svg image')];
  Promise.all(svg.map(el => load(el.getAttribute('href') || el.getAttribute('xlink:href')))).then(svgLoaded => {
    brasaReport({
      html_images: html.length,
      html_broken: html.filter(i => !(i.complete && i.naturalWidth > 0)).length,
      svg_images: svg.length,
      svg_broken: svgLoaded.filter(ok => !ok).length,
      svgs: document.querySelectorAll('svg').length,
      text: document.body.innerText.length,
      requests: performance.getEntriesByType('resource').map(r => r.name).filter(n => !n.startsWith('data:')),
      sizes: brasaTextSizes(),
    });
  });
});
</script>"#;

/// The smallest text, as rendered, the report keeps at any width.
const READABLE_PX: f64 = 11.0;

#[test]
fn html_report_renders_in_chromium() {
    let Some(browser) = browser::browser_or_skip("the HTML report") else { return };
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

    let copy = |width: u32| dir.path().join(format!("checked-{width}.html"));
    let pages = [
        Page { html: &html, copy: copy(1280), width: 1280, height: 2400 },
        Page { html: &html, copy: copy(390), width: 390, height: 2400 },
    ];
    let screenshot = dir.path().join("screenshot.png");
    let reports = browser::check(&browser, &pages, CHECK_SCRIPT, &screenshot);
    let (wide, narrow) = (&reports[0], &reports[1]);
    assert_eq!(wide["viewport"], 1280, "{wide}");
    assert_eq!(narrow["viewport"], 390, "{narrow}");
    for page in [wide, narrow] {
        assert_eq!(page["errors"], serde_json::json!([]), "{page}");
        assert_eq!(page["requests"], serde_json::json!([]), "{page}");
        assert_eq!(page["html_broken"], 0, "{page}");
        assert_eq!(page["svg_broken"], 0, "{page}");
        // the prediction grid and the mistakes gallery embed the test images
        assert!(page["svg_images"].as_u64().unwrap() >= 12, "{page}");
        assert!(page["svgs"].as_u64().unwrap() >= 10, "{page}");
        assert!(page["text"].as_u64().unwrap() > 2000, "{page}");
        let sizes = &page["sizes"];
        eprintln!("at {} px: smallest chart text {} px (box {} px), smallest page text {} px", page["viewport"], sizes["svg_min_px"], sizes["svg_min_box"], sizes["html_min_px"]);
        for chart in sizes["charts"].as_array().unwrap() {
            eprintln!("  {:<48} shown {:>4} px wide, smallest text {} px (box {} px)", chart["chart"].as_str().unwrap(), chart["width"], chart["min_px"], chart["min_box"]);
        }
        for chart in sizes["charts"].as_array().unwrap() {
            assert!(chart["min_px"].as_f64().unwrap() >= READABLE_PX, "text below {READABLE_PX} px at {} px: {chart}", page["viewport"]);
        }
        assert!(sizes["html_min_px"].as_f64().unwrap() >= READABLE_PX, "page text below {READABLE_PX} px at {} px: {sizes}", page["viewport"]);
    }
    assert!(narrow["overflow"].as_i64().unwrap() <= 0, "horizontal scrolling on a phone-width window: {narrow}");

    // each frame of the screenshot, side by side
    let image = image::open(&screenshot).unwrap().to_rgb8();
    let mut left = 0;
    for page in &pages {
        let frame = image::imageops::crop_imm(&image, left, 0, page.width, page.height.min(image.height())).to_image();
        let png = dir.path().join(format!("screenshot-{}.png", page.width));
        frame.save(&png).unwrap();
        let (ink, colours) = browser::ink(&png);
        assert!(ink > 0.03 && colours > 50, "the {}px screenshot looks blank: {:.1}% ink, {colours} colours", page.width, ink * 100.0);
        eprintln!("screenshot {}x{}: {:.1}% ink, {colours} colours", page.width, page.height, ink * 100.0);
        left += page.width + 10;
    }
}
