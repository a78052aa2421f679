//! Progress bars and log lines on stderr. Bars draw only on a terminal; log lines always print
//! unless the user asked for `--quiet`.

use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where progress goes: bars and log lines on stderr, or nowhere.
#[derive(Clone)]
pub struct Progress {
    multi: Option<MultiProgress>,
}

impl Progress {
    /// Bars (when stderr is a terminal) and log lines.
    pub fn stderr() -> Self {
        Self { multi: Some(MultiProgress::with_draw_target(ProgressDrawTarget::stderr())) }
    }

    /// Nothing at all (`--quiet`, tests).
    pub fn hidden() -> Self {
        Self { multi: None }
    }

    /// A bar counting `len` items.
    pub fn bar(&self, len: u64, message: &str) -> ProgressBar {
        self.styled(len, message, "{msg:>12} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}")
    }

    /// A bar counting bytes.
    pub fn bytes_bar(&self, len: Option<u64>, message: &str) -> ProgressBar {
        match len {
            Some(len) => self.styled(len, message, "{msg:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}"),
            None => self.styled(0, message, "{msg:>12} {spinner} {bytes} {bytes_per_sec}"),
        }
    }

    /// A bar for one training epoch, with the running loss in its message.
    pub fn epoch_bar(&self, len: u64, message: &str) -> ProgressBar {
        self.styled(len, message, "{msg} [{bar:30}] {pos}/{len} batches {per_sec} ETA {eta}")
    }

    fn styled(&self, len: u64, message: &str, template: &str) -> ProgressBar {
        let Some(multi) = &self.multi else {
            return ProgressBar::hidden();
        };
        let style = ProgressStyle::with_template(template)
            .expect("static template is valid")
            .progress_chars("=> ");
        let bar = multi.add(ProgressBar::new(len).with_style(style).with_message(message.to_string()));
        bar.enable_steady_tick(Duration::from_millis(250));
        bar
    }

    /// Prints a log line above any active bars.
    pub fn log(&self, line: impl AsRef<str>) {
        if let Some(multi) = &self.multi {
            if multi.is_hidden() {
                eprintln!("{}", line.as_ref());
            } else {
                // Printing through the bars keeps them from tearing the line.
                let _ = multi.println(line.as_ref());
            }
        }
    }
}
