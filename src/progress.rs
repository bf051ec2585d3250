//! A progress bar on a terminal, shown only once the work has taken a moment (a quick
//! command prints no bar at all, and nothing goes to a pipe or a log).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub struct Progress {
    bar: indicatif::ProgressBar,
    started: Instant,
    shown: AtomicBool,
}

impl Progress {
    /// A bar counting `len` things: "what [=====>    ] 12/40".
    pub fn counting(len: u64, what: &'static str) -> Progress {
        Self::new(len, what, "{msg} [{bar:30}] {pos}/{len}")
    }

    /// A bar of `total` bytes, with the time taken.
    pub fn bytes(total: u64, what: &'static str) -> Progress {
        Self::new(
            total,
            what,
            "{msg} [{bar:30}] {bytes}/{total_bytes} {elapsed}",
        )
    }

    fn new(len: u64, what: &'static str, template: &str) -> Progress {
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(len),
            indicatif::ProgressDrawTarget::hidden(),
        );
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what);
        Progress {
            bar,
            started: Instant::now(),
            shown: AtomicBool::new(false),
        }
    }

    /// `n` more done.
    pub fn inc(&self, n: u64) {
        use std::io::IsTerminal;
        if !self.shown.load(Ordering::Relaxed)
            && self.started.elapsed() > Duration::from_millis(200)
            && std::io::stderr().is_terminal()
            && !self.shown.swap(true, Ordering::Relaxed)
        {
            self.bar
                .set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
        self.bar.inc(n);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
