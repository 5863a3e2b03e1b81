//! The prompt player: a queue of prompts and silences, read out as 20 ms frames.

use std::time::Duration;

use crate::prompt::Prompt;
use crate::rtp::FRAME_SAMPLES;

/// One element of a play queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlayItem {
    /// A prompt.
    Prompt(Prompt),
    /// A pause.
    Silence(Duration),
}

/// What to play: a sequence of prompts and pauses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlaySpec {
    /// The queue, played in order.
    pub items: Vec<PlayItem>,
    /// A DTMF digit stops playback (barge-in); the digit still reaches the call flow.
    pub barge_in: bool,
    /// Start over at the end until stopped (hold music).
    pub repeat: bool,
}

impl PlaySpec {
    /// Plays `items` once, without barge-in.
    #[must_use]
    pub fn new(items: Vec<PlayItem>) -> Self {
        Self {
            items,
            barge_in: false,
            repeat: false,
        }
    }

    /// Lets a digit interrupt playback.
    #[must_use]
    pub fn with_barge_in(mut self) -> Self {
        self.barge_in = true;
        self
    }

    /// Loops until stopped.
    #[must_use]
    pub fn repeating(mut self) -> Self {
        self.repeat = true;
        self
    }
}

/// Reads a [`PlaySpec`] out as 160-sample frames (a pure frame producer).
#[derive(Debug)]
pub struct Player {
    spec: PlaySpec,
    index: usize,
    offset: usize,
}

impl Player {
    /// A player at the start of `spec`.
    #[must_use]
    pub fn new(spec: PlaySpec) -> Self {
        Self {
            spec,
            index: 0,
            offset: 0,
        }
    }

    /// Whether digits interrupt this playback.
    #[must_use]
    pub fn barge_in(&self) -> bool {
        self.spec.barge_in
    }

    /// Fills `frame` with the next 20 ms; items are concatenated without gaps and the last
    /// frame is padded with silence. Returns false, leaving `frame` untouched, when finished.
    pub fn next_frame(&mut self, frame: &mut [i16; FRAME_SAMPLES]) -> bool {
        let mut filled = 0;
        while filled < FRAME_SAMPLES {
            let Some(item) = self.spec.items.get(self.index) else {
                // A repeating queue with audio in it starts over (each pass makes progress, so
                // this cannot spin); an empty or all-zero-length queue just ends.
                if self.spec.repeat && self.total_samples() > 0 {
                    self.index = 0;
                    self.offset = 0;
                    continue;
                }
                break;
            };
            let len = item_len(item);
            let take = (len - self.offset.min(len)).min(FRAME_SAMPLES - filled);
            let dst = &mut frame[filled..filled + take];
            match item {
                PlayItem::Prompt(p) => {
                    dst.copy_from_slice(&p.samples()[self.offset..self.offset + take])
                }
                PlayItem::Silence(_) => dst.fill(0),
            }
            filled += take;
            self.offset += take;
            if self.offset >= len {
                self.index += 1;
                self.offset = 0;
            }
        }
        if filled == 0 {
            return false;
        }
        frame[filled..].fill(0);
        true
    }

    fn total_samples(&self) -> usize {
        self.spec
            .items
            .iter()
            .map(item_len)
            .fold(0, usize::saturating_add)
    }
}

fn item_len(item: &PlayItem) -> usize {
    match item {
        PlayItem::Prompt(p) => p.samples().len(),
        PlayItem::Silence(d) => usize::try_from(d.as_millis())
            .unwrap_or(usize::MAX)
            .saturating_mul(8),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(player: &mut Player, max: usize) -> Vec<[i16; FRAME_SAMPLES]> {
        let mut out = Vec::new();
        let mut f = [0; FRAME_SAMPLES];
        while out.len() < max && player.next_frame(&mut f) {
            out.push(f);
        }
        out
    }

    #[test]
    fn queue_concatenates_prompts_and_silence() {
        let a = Prompt::from_samples("a", vec![1; 200]);
        let b = Prompt::from_samples("b", vec![2; 100]);
        let mut p = Player::new(PlaySpec::new(vec![
            PlayItem::Prompt(a),
            PlayItem::Silence(Duration::from_millis(10)),
            PlayItem::Prompt(b),
        ]));
        let f = frames(&mut p, 10);
        // 200 + 80 + 100 = 380 samples = 3 frames, the last padded.
        assert_eq!(f.len(), 3);
        assert!(f[0].iter().all(|&s| s == 1));
        assert!(f[1][..40].iter().all(|&s| s == 1));
        assert!(f[1][40..120].iter().all(|&s| s == 0));
        assert!(f[1][120..].iter().all(|&s| s == 2));
        assert!(f[2][..60].iter().all(|&s| s == 2));
        assert!(f[2][60..].iter().all(|&s| s == 0));
        assert!(!p.next_frame(&mut [0; FRAME_SAMPLES]));
    }

    #[test]
    fn repeat_loops_and_empty_queues_end() {
        let a = Prompt::from_samples("a", vec![5; 100]);
        let mut p = Player::new(PlaySpec::new(vec![PlayItem::Prompt(a)]).repeating());
        let f = frames(&mut p, 5);
        assert_eq!(f.len(), 5);
        assert!(f.iter().all(|f| f.iter().all(|&s| s == 5)));
        let mut p = Player::new(PlaySpec::new(vec![]).repeating());
        assert!(frames(&mut p, 5).is_empty());
        let mut p = Player::new(PlaySpec::new(vec![PlayItem::Silence(Duration::ZERO)]).repeating());
        assert!(frames(&mut p, 5).is_empty());
    }
}
