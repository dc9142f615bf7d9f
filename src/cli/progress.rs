//! `train`'s progress: bars on a terminal; off one (a log file, a pipe, CI) a plain line every
//! few seconds, since a bar that is not drawn would leave the run silent until its end.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use rnn_wgpu::train::StepReport;

/// How often a plain progress line is printed off a terminal.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// The training and validation progress of one run.
pub struct TrainProgress {
    goal: BarGoal,
    display: Display,
}

enum Display {
    Bars {
        training: ProgressBar,
        validation: Option<ProgressBar>,
    },
    Lines {
        last: Instant,
    },
}

impl TrainProgress {
    /// Bars when stderr is a terminal, else plain lines on stderr.
    pub fn new(goal: BarGoal, start_step: usize) -> Self {
        let display = if std::io::stderr().is_terminal() {
            Display::Bars {
                training: goal.bar(start_step),
                validation: None,
            }
        } else {
            Display::Lines {
                last: Instant::now(),
            }
        };
        TrainProgress { goal, display }
    }

    /// After every optimizer step.
    pub fn step(&mut self, step: &StepReport) {
        let message = format!(
            "step {}  loss {:.3}  ppl {}  {:.0} chars/s",
            step.step,
            step.loss,
            super::perplexity(step.loss as f64),
            step.chars_per_sec
        );
        match &mut self.display {
            Display::Bars { training, .. } => {
                training.set_position(self.goal.position(step));
                training.set_message(message);
            }
            Display::Lines { last } => {
                if last.elapsed() >= LINE_EVERY {
                    *last = Instant::now();
                    eprintln!("{:.0} s: {message}", step.elapsed);
                }
            }
        }
    }

    /// After each group of validation windows: `done` of `total` scored.
    pub fn validation(&mut self, done: usize, total: usize) {
        match &mut self.display {
            Display::Bars {
                training,
                validation,
            } => validation
                .get_or_insert_with(|| {
                    training.finish_and_clear();
                    validation_bar(total)
                })
                .set_position(done as u64),
            Display::Lines { last } => {
                if last.elapsed() >= LINE_EVERY {
                    *last = Instant::now();
                    eprintln!("validation: {done} of {total} windows");
                }
            }
        }
    }

    /// Clears the bars.
    pub fn finish(self) {
        if let Display::Bars {
            training,
            validation,
        } = self.display
        {
            training.finish_and_clear();
            if let Some(bar) = validation {
                bar.finish_and_clear();
            }
        }
    }
}

/// What the training bar fills towards: the step count of `--steps`, else the time limit (in
/// milliseconds, so that a run of few slow steps still moves it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BarGoal {
    Steps(u64),
    Millis(u64),
}

impl BarGoal {
    pub fn new(steps: Option<usize>, seconds: Option<f64>) -> Self {
        match (steps, seconds) {
            (Some(n), _) => BarGoal::Steps(n as u64),
            (None, Some(s)) => BarGoal::Millis((s * 1000.0).round() as u64),
            // The caller always sets one of the two limits.
            (None, None) => BarGoal::Steps(0),
        }
    }

    fn length(self) -> u64 {
        match self {
            BarGoal::Steps(n) | BarGoal::Millis(n) => n,
        }
    }

    fn position(self, step: &StepReport) -> u64 {
        match self {
            BarGoal::Steps(n) => (step.step as u64).min(n),
            BarGoal::Millis(n) => ((step.elapsed * 1000.0) as u64).min(n),
        }
    }

    fn bar(self, start_step: usize) -> ProgressBar {
        let bar = ProgressBar::new(self.length());
        let template = match self {
            BarGoal::Steps(_) => "{elapsed_precise} {wide_bar} {pos}/{len} steps, ETA {eta}  {msg}",
            BarGoal::Millis(_) => "{elapsed_precise} {wide_bar} {percent}%, ETA {eta}  {msg}",
        };
        bar.set_style(
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        if let BarGoal::Steps(_) = self {
            bar.set_position(start_step as u64);
            bar.reset_eta();
        }
        bar
    }
}

/// The indicator of the validation pass, which takes seconds on the CPU and minutes on lavapipe.
fn validation_bar(windows: usize) -> ProgressBar {
    let bar = ProgressBar::new(windows as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} validation {wide_bar} {pos}/{len} windows, ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(step: usize, elapsed: f64) -> StepReport {
        StepReport {
            step,
            loss: 1.0,
            elapsed,
            chars_per_sec: 1.0,
        }
    }

    #[test]
    fn a_time_limited_bar_fills_by_time() {
        let goal = BarGoal::new(None, Some(60.0));
        assert_eq!(goal, BarGoal::Millis(60_000));
        let bar = goal.bar(0);
        assert_eq!(bar.length(), Some(60_000));
        assert_eq!(goal.position(&at(3, 15.0)), 15_000);
        assert_eq!(goal.position(&at(9, 61.0)), 60_000);
    }

    #[test]
    fn a_step_limited_bar_fills_by_steps_from_the_resumed_step() {
        let goal = BarGoal::new(Some(200), Some(60.0));
        assert_eq!(goal, BarGoal::Steps(200));
        let bar = goal.bar(150);
        assert_eq!((bar.length(), bar.position()), (Some(200), 150));
        assert_eq!(goal.position(&at(151, 0.5)), 151);
    }
}
