//! The throttle: narrate every step when traffic is slow, one summary line a
//! second when it is fast.
//!
//! A class can read a few steps a second; a benchmark makes hundreds of
//! thousands. The throttle counts the steps of the current one-second window.
//! While the count stays under the limit (`--rate`, 50 by default) every step
//! is shown. The first step over the limit switches to *summary mode*: steps
//! are only counted, by call name and by errno, and each window that closes
//! prints one summary. A window with fewer steps than the limit, or a pause
//! of a whole window with no step at all, switches back to full narration,
//! so a demo that calms down becomes readable again. A program that waits
//! (epoll_wait, recvfrom with a timeout) calls `Narrator::tick` when it
//! wakes, so the last busy second's summary is printed on time rather than
//! when the next step comes.
//!
//! The throttle only decides and counts; it never prints. Time is passed in,
//! so the tests below can drive it without sleeping.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long one counting window lasts: one summary line per window at most.
pub const WINDOW: Duration = Duration::from_secs(1);

/// What was hidden during one window of summary mode.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Summary {
    /// How long the window lasted (a quiet spell makes it longer than 1 s).
    pub seconds: f64,
    /// Steps that were counted instead of narrated.
    pub hidden_steps: u64,
    /// Hidden steps by system call name.
    pub calls: BTreeMap<&'static str, u64>,
    /// Hidden failed calls by errno name.
    pub errors: BTreeMap<String, u64>,
    /// Counters a demo adds itself (bytes, connections...).
    pub counters: BTreeMap<&'static str, u64>,
}

impl Summary {
    fn is_empty(&self) -> bool {
        self.hidden_steps == 0 && self.counters.is_empty()
    }
}

#[derive(Debug)]
pub struct Throttle {
    /// Steps per window narrated in full; 0 turns the throttle off.
    limit: u32,
    window_start: Option<Instant>,
    /// When the last step began: a pause of a whole window ends summary mode.
    last_step: Option<Instant>,
    steps_in_window: u32,
    summarising: bool,
    hidden: Summary,
}

/// The throttle's verdict on a step that is about to start.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Narrate this step in full?
    pub show: bool,
    /// A window just closed with hidden steps: print this summary first.
    pub summary: Option<Summary>,
}

impl Throttle {
    pub fn new(limit: u32) -> Throttle {
        Throttle {
            limit,
            window_start: None,
            last_step: None,
            steps_in_window: 0,
            summarising: false,
            hidden: Summary::default(),
        }
    }

    /// Is the throttle counting instead of narrating right now?
    #[cfg(test)]
    pub fn summarising(&self) -> bool {
        self.summarising
    }

    /// Decide about a step that begins at `now`.
    pub fn admit(&mut self, now: Instant) -> Verdict {
        if self.limit == 0 {
            return Verdict {
                show: true,
                summary: None,
            };
        }
        let summary = self.close_window_if_due(now);
        self.last_step = Some(now);
        self.steps_in_window += 1;
        if !self.summarising && self.steps_in_window > self.limit {
            self.summarising = true;
        }
        Verdict {
            show: !self.summarising,
            summary,
        }
    }

    /// Count a step that was hidden (call it after `admit` said not to show).
    pub fn hide_call(&mut self, call: &'static str) {
        self.hidden.hidden_steps += 1;
        *self.hidden.calls.entry(call).or_insert(0) += 1;
    }

    /// Count a hidden step's failure by errno name.
    pub fn hide_error(&mut self, errno: &str) {
        match self.hidden.errors.get_mut(errno) {
            Some(count) => *count += 1,
            None => {
                self.hidden.errors.insert(errno.to_string(), 1);
            }
        }
    }

    /// Add to a demo's own counter; shown only in summaries.
    pub fn count(&mut self, key: &'static str, amount: u64) {
        if self.summarising {
            *self.hidden.counters.entry(key).or_insert(0) += amount;
        }
    }

    /// Set a demo's level (connections open); shown only in summaries, with
    /// the last value set during the window.
    pub fn gauge(&mut self, key: &'static str, value: u64) {
        if self.summarising {
            self.hidden.counters.insert(key, value);
        }
    }

    /// The summary of a window that has ended by `now`, if one is due. The
    /// narrator also asks before a blocking call, so the last busy second is
    /// not left unprinted while the program waits.
    pub fn close_window_if_due(&mut self, now: Instant) -> Option<Summary> {
        let start = *self.window_start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed < WINDOW {
            return None;
        }
        let quiet_window = self.steps_in_window <= self.limit;
        let paused = self
            .last_step
            .is_none_or(|last| now.saturating_duration_since(last) >= WINDOW);
        self.window_start = Some(now);
        self.steps_in_window = 0;
        let mut summary = std::mem::take(&mut self.hidden);
        if quiet_window || paused {
            self.summarising = false;
        }
        if summary.is_empty() {
            return None;
        }
        summary.seconds = elapsed.as_secs_f64();
        Some(summary)
    }

    /// How long until the current window's summary is due, when there is
    /// one to print (or summary mode to end); None when nothing is pending.
    /// A waiting program uses it as an upper bound on its timeout.
    pub fn due_in(&self, now: Instant) -> Option<Duration> {
        if !self.summarising && self.hidden.is_empty() {
            return None;
        }
        let start = self.window_start?;
        Some((start + WINDOW).saturating_duration_since(now))
    }

    /// Whatever is still counted, for the end of the program.
    pub fn take_pending(&mut self, now: Instant) -> Option<Summary> {
        let start = self.window_start.unwrap_or(now);
        let mut summary = std::mem::take(&mut self.hidden);
        if summary.is_empty() {
            return None;
        }
        summary.seconds = now.saturating_duration_since(start).as_secs_f64();
        Some(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pause_after_a_burst_prints_its_summary_and_narrates_again() {
        let base = Instant::now();
        let mut throttle = Throttle::new(5);
        for i in 0..100 {
            if !throttle.admit(ms(base, i * 5)).show {
                throttle.hide_call("recv");
            }
        }
        assert!(throttle.summarising());
        // The burst ended at 0.5 s: its summary is due at the window's end.
        let due = throttle
            .due_in(ms(base, 600))
            .expect("a summary is pending");
        assert_eq!(due, Duration::from_millis(400));
        // A waiting program ticks at 1.0 s: the summary comes out then...
        let summary = throttle.close_window_if_due(ms(base, 1000));
        assert_eq!(summary.map(|s| s.hidden_steps), Some(95));
        // That window was busy, so summary mode lasts until a quiet one
        // ends: one more tick, with nothing to print, ends it.
        assert_eq!(throttle.due_in(ms(base, 1000)), Some(WINDOW));
        assert_eq!(throttle.close_window_if_due(ms(base, 2000)), None);
        assert_eq!(throttle.due_in(ms(base, 2000)), None);
        // ...and a lone step five seconds later is narrated in full.
        let verdict = throttle.admit(ms(base, 6000));
        assert!(verdict.show);
        assert_eq!(verdict.summary, None);
    }

    #[test]
    fn a_step_after_a_whole_quiet_window_is_narrated_even_without_a_tick() {
        let base = Instant::now();
        let mut throttle = Throttle::new(5);
        for i in 0..100 {
            if !throttle.admit(ms(base, i * 5)).show {
                throttle.hide_call("recv");
            }
        }
        // Nobody ticked; the next step, at 5.7 s, closes the long window,
        // prints its summary first, and is itself shown.
        let verdict = throttle.admit(ms(base, 5700));
        assert_eq!(verdict.summary.map(|s| s.hidden_steps), Some(95));
        assert!(verdict.show);
    }

    fn ms(base: Instant, millis: u64) -> Instant {
        base + Duration::from_millis(millis)
    }

    #[test]
    fn slow_traffic_is_always_narrated() {
        let base = Instant::now();
        let mut throttle = Throttle::new(5);
        for i in 0..20 {
            // 4 steps a second, under the limit of 5.
            let verdict = throttle.admit(ms(base, i * 250));
            assert!(verdict.show, "step {i} should be shown");
            assert_eq!(verdict.summary, None);
        }
    }

    #[test]
    fn a_burst_switches_to_one_summary_a_second_and_back() {
        let base = Instant::now();
        let mut throttle = Throttle::new(5);
        let mut shown = 0;
        // 100 steps in the first 0.99 s.
        for i in 0..100 {
            let verdict = throttle.admit(ms(base, i * 9 / 10));
            if verdict.show {
                shown += 1;
            } else {
                throttle.hide_call("recv");
            }
            assert_eq!(verdict.summary, None);
        }
        assert_eq!(shown, 5, "only the limit is narrated in full");
        assert!(throttle.summarising());

        // The next second is still busy: the first step of it closes the
        // window and brings the summary of the 95 hidden steps.
        let verdict = throttle.admit(ms(base, 1000));
        let summary = verdict.summary.expect("a summary after the busy second");
        assert_eq!(summary.hidden_steps, 95);
        assert_eq!(summary.calls.get("recv"), Some(&95));
        assert!(
            !verdict.show,
            "still in summary mode: the window that closed was busy"
        );
        throttle.hide_call("recv");

        // A quiet second (one step) ends summary mode at the next window.
        let verdict = throttle.admit(ms(base, 2500));
        assert!(
            verdict.summary.is_some(),
            "the hidden step is still reported"
        );
        assert!(verdict.show, "a calm window brings full narration back");
        assert!(!throttle.summarising());
    }

    #[test]
    fn errors_and_counters_are_summed() {
        let base = Instant::now();
        let mut throttle = Throttle::new(1);
        throttle.admit(base);
        assert!(!throttle.admit(base).show);
        throttle.hide_call("send");
        throttle.hide_error("EPIPE");
        throttle.hide_error("EPIPE");
        throttle.count("bytes", 64);
        throttle.count("bytes", 64);
        let summary = throttle.take_pending(ms(base, 300)).expect("pending");
        assert_eq!(summary.errors.get("EPIPE"), Some(&2));
        assert_eq!(summary.counters.get("bytes"), Some(&128));
        assert!((summary.seconds - 0.3).abs() < 1e-9);
        assert_eq!(throttle.take_pending(ms(base, 400)), None);
    }

    #[test]
    fn a_gauge_keeps_its_last_value() {
        let base = Instant::now();
        let mut throttle = Throttle::new(1);
        throttle.admit(base);
        throttle.admit(base);
        throttle.gauge("connections_open", 10);
        throttle.gauge("connections_open", 7);
        let summary = throttle.take_pending(ms(base, 100)).expect("pending");
        assert_eq!(summary.counters.get("connections_open"), Some(&7));
    }

    #[test]
    fn zero_turns_the_throttle_off() {
        let base = Instant::now();
        let mut throttle = Throttle::new(0);
        for _ in 0..10_000 {
            assert!(throttle.admit(base).show);
        }
    }
}
