//! The call flows stirgate runs when it answers a call itself (voicemail, CAPTCHA): their
//! settings and state. The logic lives in `B2bua` (module `b2bua::local`), driven by SIP,
//! media events and the verdict; media is driven through [`crate::Output`] commands.
//!
//! ```text
//! CAPTCHA:   answer ─ACK─▶ challenge (prompt + digits, collect) ─ok─▶ thank you + hold music,
//!            call the forward target with our SDP ─2xx─▶ bridge caller ⇄ callee
//!                                       └─wrong─▶ again (attempts) ─▶ goodbye ─▶ BYE
//! voicemail: answer ─ACK─▶ greeting + beep ─▶ record (max, `*`) ─▶ saved ─▶ notify, thank you ─▶ BYE
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use media::prompt::PromptSet;

/// How the CAPTCHA challenges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptchaMode {
    /// Speak `digits` random digits; the caller repeats them.
    Random {
        /// How many digits.
        digits: usize,
    },
    /// Play the question prompt (`captcha_question`), expect a fixed answer.
    Fixed {
        /// The expected digits, e.g. "10".
        answer: String,
    },
}

/// `[captcha]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptchaConfig {
    /// The mode.
    pub mode: CaptchaMode,
    /// Tries before hanging up.
    pub attempts: u32,
    /// How long to wait for digits.
    pub timeout: Duration,
}

impl Default for CaptchaConfig {
    fn default() -> Self {
        Self {
            mode: CaptchaMode::Random { digits: 4 },
            attempts: 3,
            timeout: Duration::from_secs(10),
        }
    }
}

/// `[voicemail]` settings the flow needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoicemailConfig {
    /// Where finished recordings go.
    pub dir: PathBuf,
    /// Longest message.
    pub max_len: Duration,
}

impl Default for VoicemailConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("voicemail"),
            max_len: Duration::from_secs(120),
        }
    }
}

/// `[screen]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScreenConfig {
    /// How long the callee may ring before the caller goes to voicemail.
    pub ring_timeout: Duration,
    /// The longest recorded name.
    pub name_max: Duration,
    /// How long the callee has to press 1 or 2.
    pub decision_timeout: Duration,
}

impl Default for ScreenConfig {
    fn default() -> Self {
        Self {
            ring_timeout: Duration::from_secs(25),
            name_max: Duration::from_secs(5),
            decision_timeout: Duration::from_secs(10),
        }
    }
}

/// Which media leg of a locally answered call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaLeg {
    /// The caller's (stirgate answered it).
    Caller,
    /// The callee's (stirgate called it with its own SDP).
    Callee,
}

/// What the local flows need from the outside.
#[derive(Clone)]
pub struct FlowConfig {
    /// CAPTCHA settings.
    pub captcha: CaptchaConfig,
    /// Voicemail settings.
    pub voicemail: VoicemailConfig,
    /// Call screening settings.
    pub screen: ScreenConfig,
    /// The prompts (loaded and rendered by the shell at start-up).
    pub prompts: Arc<PromptSet>,
}

impl std::fmt::Debug for FlowConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowConfig")
            .field("captcha", &self.captcha)
            .field("voicemail", &self.voicemail)
            .field("screen", &self.screen)
            .finish_non_exhaustive()
    }
}

/// A running local flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    /// The CAPTCHA.
    Captcha {
        /// The digits expected for the current challenge.
        expected: String,
        /// Tries left after the current one.
        attempts_left: u32,
        /// Where it stands.
        stage: CaptchaStage,
    },
    /// Voicemail.
    Voicemail {
        /// Where it stands.
        stage: VoicemailStage,
    },
    /// Call screening.
    Screen {
        /// Where it stands.
        stage: ScreenStage,
        /// The caller's recorded name.
        name: Option<PathBuf>,
    },
}

/// Call screening stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScreenStage {
    /// Media is being set up / the 200 is waiting for its ACK.
    Answering,
    /// "Please say your name" playing.
    Prompting,
    /// Recording the caller's name.
    RecordingName,
    /// The callee is being called; the caller hears hold music.
    Ringing,
    /// The callee answered and hears "call from" + the recorded name, "press 1 or 2".
    Announcing,
    /// Accepted: caller and callee bridged.
    Bridged,
}

/// CAPTCHA stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptchaStage {
    /// Media is being set up / the 200 is waiting for its ACK.
    Answering,
    /// Challenge played, digits being collected.
    Challenge,
    /// Passed; the forward target is being called (the caller hears hold music).
    Connecting,
    /// Caller and callee bridged.
    Bridged,
    /// Failed (or the callee could not be reached): the goodbye prompt plays, then BYE.
    Goodbye {
        /// True when the CAPTCHA was passed (the callee failed).
        passed: bool,
    },
}

/// Voicemail stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoicemailStage {
    /// Media is being set up / the 200 is waiting for its ACK.
    Answering,
    /// Greeting and beep playing.
    Greeting,
    /// Recording.
    Recording,
    /// The caller hung up while recording: waiting for the recording to be saved.
    Saving,
    /// Thank-you / goodbye playing, then BYE.
    Goodbye {
        /// True when a message was saved.
        saved: bool,
    },
}

impl Flow {
    /// The route name.
    pub fn route(&self) -> &'static str {
        match self {
            Self::Captcha { .. } => "captcha",
            Self::Voicemail { .. } => "voicemail",
            Self::Screen { .. } => "screen",
        }
    }
}
