//! Prompts: WAV files loaded once at start-up into 8 kHz mono 16-bit PCM, the built-in prompt
//! set, and text-to-speech rendering of text that only exists in the config.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// Declares one embedded prompt: its name and the bytes of `crates/media/prompts/<name>.wav`.
macro_rules! embedded {
    ($name:literal) => {
        (
            $name,
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/prompts/",
                $name,
                ".wav"
            )),
        )
    };
}

/// The built-in prompt names (files `<name>.wav` in the prompt directory).
pub const BUILT_IN: &[&str] = &[
    "greeting",
    "record_name",
    "leave_message",
    "beep",
    "enter_digits",
    "digit_0",
    "digit_1",
    "digit_2",
    "digit_3",
    "digit_4",
    "digit_5",
    "digit_6",
    "digit_7",
    "digit_8",
    "digit_9",
    "thank_you",
    "goodbye",
    "hold_music",
];

/// Audio ready to play: 8 kHz mono linear PCM, cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    name: Arc<str>,
    samples: Arc<[i16]>,
}

/// Why a prompt could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PromptError {
    /// The file could not be read as WAV.
    #[error("prompt {path}: {source}")]
    Wav {
        /// The file.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: hound::Error,
    },
    /// A WAV format stirgate cannot convert.
    #[error("prompt {path}: unsupported format ({detail}); use 8 kHz mono 16-bit PCM WAV")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: &'static str,
    },
    /// A built-in prompt is missing from the prompt directory.
    #[error("prompt directory {dir}: missing {name}.wav")]
    Missing {
        /// The directory.
        dir: PathBuf,
        /// The prompt name.
        name: &'static str,
    },
    /// Directory or cache file I/O failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The text-to-speech command failed.
    #[error("text-to-speech command {program:?} failed: {status}")]
    Tts {
        /// The program run.
        program: String,
        /// Its exit status.
        status: std::process::ExitStatus,
    },
}

impl Prompt {
    /// Wraps 8 kHz mono samples.
    #[must_use]
    pub fn from_samples(name: &str, samples: Vec<i16>) -> Self {
        Self {
            name: name.into(),
            samples: samples.into(),
        }
    }

    /// Loads a WAV file, converting it to 8 kHz mono 16-bit: other integer widths and float
    /// samples are scaled, channels are averaged, and other sample rates are resampled with a
    /// windowed-sinc filter.
    pub fn load(path: &Path) -> Result<Self, PromptError> {
        let reader = hound::WavReader::open(path).map_err(|source| PromptError::Wav {
            path: path.to_owned(),
            source,
        })?;
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("prompt");
        Self::decode(name, reader, path)
    }

    /// Decodes WAV bytes held in memory (the embedded prompts) as [`Self::load`] does a file.
    pub fn from_wav_bytes(name: &str, bytes: &[u8]) -> Result<Self, PromptError> {
        let path = PathBuf::from(format!("(embedded) {name}.wav"));
        let reader = hound::WavReader::new(std::io::Cursor::new(bytes)).map_err(|source| {
            PromptError::Wav {
                path: path.clone(),
                source,
            }
        })?;
        Self::decode(name, reader, &path)
    }

    fn decode<R: std::io::Read>(
        name: &str,
        reader: hound::WavReader<R>,
        path: &Path,
    ) -> Result<Self, PromptError> {
        let wav_err = |source| PromptError::Wav {
            path: path.to_owned(),
            source,
        };
        let spec = reader.spec();
        let format = |detail| PromptError::Format {
            path: path.to_owned(),
            detail,
        };
        if spec.channels == 0 || spec.sample_rate < 4000 || spec.sample_rate > 192_000 {
            return Err(format("channel count or sample rate out of range"));
        }
        let interleaved: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
            (hound::SampleFormat::Int, bits @ 8..=32) => {
                let scale = 1.0 / (1u64 << (bits - 1)) as f32;
                reader
                    .into_samples::<i32>()
                    .map(|s| s.map(|v| v as f32 * scale))
                    .collect::<Result<_, _>>()
                    .map_err(wav_err)?
            }
            (hound::SampleFormat::Float, 32) => reader
                .into_samples::<f32>()
                .collect::<Result<_, _>>()
                .map_err(wav_err)?,
            _ => return Err(format("sample width")),
        };
        let channels = usize::from(spec.channels);
        let mono: Vec<f32> = interleaved
            .chunks(channels)
            .map(|frame| frame.iter().sum::<f32>() / channels as f32)
            .collect();
        let mono = resample(&mono, spec.sample_rate, 8000);
        let samples = mono
            .iter()
            .map(|&v| (v * 32768.0).clamp(-32768.0, 32767.0) as i16)
            .collect::<Vec<_>>();
        Ok(Self::from_samples(name, samples))
    }

    /// `ms` milliseconds of silence.
    #[must_use]
    pub fn silence(ms: u32) -> Self {
        Self::from_samples("silence", vec![0; ms as usize * 8])
    }

    /// The prompt's name (file stem).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The samples (8 kHz mono).
    #[must_use]
    pub fn samples(&self) -> &[i16] {
        &self.samples
    }

    /// Duration in milliseconds.
    #[must_use]
    pub fn duration_ms(&self) -> u64 {
        self.samples.len() as u64 / 8
    }

    /// Writes the prompt as an 8 kHz mono 16-bit WAV file.
    pub fn save(&self, path: &Path) -> Result<(), PromptError> {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let wav_err = |source| PromptError::Wav {
            path: path.to_owned(),
            source,
        };
        let mut w = hound::WavWriter::create(path, spec).map_err(wav_err)?;
        for &s in self.samples.iter() {
            w.write_sample(s).map_err(wav_err)?;
        }
        w.finalize().map_err(wav_err)
    }
}

/// The committed prompt WAVs (`crates/media/prompts`), compiled into the binary so that
/// stirgate needs no files to answer calls. Same names as [`BUILT_IN`].
pub const EMBEDDED: &[(&str, &[u8])] = &[
    embedded!("greeting"),
    embedded!("record_name"),
    embedded!("leave_message"),
    embedded!("beep"),
    embedded!("enter_digits"),
    embedded!("digit_0"),
    embedded!("digit_1"),
    embedded!("digit_2"),
    embedded!("digit_3"),
    embedded!("digit_4"),
    embedded!("digit_5"),
    embedded!("digit_6"),
    embedded!("digit_7"),
    embedded!("digit_8"),
    embedded!("digit_9"),
    embedded!("thank_you"),
    embedded!("goodbye"),
    embedded!("hold_music"),
    embedded!("call_from"),
    embedded!("no_recording"),
    embedded!("screen_choice"),
];

/// The prompts of one directory, by name.
#[derive(Debug, Clone, Default)]
pub struct PromptSet {
    prompts: HashMap<String, Prompt>,
}

impl PromptSet {
    /// The embedded prompts ([`EMBEDDED`]), decoded.
    pub fn embedded() -> Result<Self, PromptError> {
        let mut prompts = HashMap::new();
        for (name, bytes) in EMBEDDED {
            prompts.insert((*name).to_owned(), Prompt::from_wav_bytes(name, bytes)?);
        }
        Ok(Self { prompts })
    }

    /// The embedded prompts, each replaced by `dir/<name>.wav` when that file exists; other
    /// `*.wav` files of `dir` are added. A file that cannot be converted fails the load with
    /// its path, and so does a `dir` that cannot be read.
    pub fn with_overrides(dir: &Path) -> Result<Self, PromptError> {
        let mut set = Self::embedded()?;
        set.add_dir(dir)?;
        Ok(set)
    }

    fn add_dir(&mut self, dir: &Path) -> Result<(), PromptError> {
        let io = |source| PromptError::Io {
            path: dir.to_owned(),
            source,
        };
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("wav") {
                continue;
            }
            let prompt = Prompt::load(&path)?;
            self.prompts.insert(prompt.name().to_owned(), prompt);
        }
        Ok(())
    }

    /// Loads every `*.wav` in `dir` and checks that all [`BUILT_IN`] prompts are there. Any file
    /// that cannot be converted fails the whole load, so a bad prompt stops start-up with its
    /// path in the message.
    pub fn load(dir: &Path) -> Result<Self, PromptError> {
        let io = |source| PromptError::Io {
            path: dir.to_owned(),
            source,
        };
        let mut prompts = HashMap::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("wav") {
                continue;
            }
            let prompt = Prompt::load(&path)?;
            prompts.insert(prompt.name().to_owned(), prompt);
        }
        if let Some(name) = BUILT_IN.iter().find(|n| !prompts.contains_key(**n)) {
            return Err(PromptError::Missing {
                dir: dir.to_owned(),
                name,
            });
        }
        Ok(Self { prompts })
    }

    /// The prompt called `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Prompt> {
        self.prompts.get(name)
    }

    /// The spoken digit `0`–`9`.
    #[must_use]
    pub fn digit(&self, digit: u8) -> Option<&Prompt> {
        self.prompts.get(&format!("digit_{digit}"))
    }

    /// Adds or replaces a prompt (e.g. a greeting rendered by [`Tts`]).
    pub fn insert(&mut self, name: &str, prompt: Prompt) {
        self.prompts.insert(name.to_owned(), prompt);
    }

    /// The prompts of a `[media]` config: the embedded set, overridden file by file from
    /// `media.prompt_dir` when it names a folder.
    pub fn from_config(config: &crate::Config) -> Result<Self, PromptError> {
        if config.prompt_dir.is_empty() {
            Self::embedded()
        } else {
            Self::with_overrides(Path::new(&config.prompt_dir))
        }
    }

    /// Replaces prompt `name` with `text` spoken by `tts` (at start-up, for text that only
    /// exists in the config, e.g. an organisation's greeting). Without a text-to-speech command,
    /// or if it fails (logged), the generic prompt stays. Returns whether the text was rendered.
    pub fn render_text(&mut self, name: &str, text: &str, tts: Option<&Tts>) -> bool {
        let Some(tts) = tts else { return false };
        match tts.render(name, text) {
            Ok(prompt) => {
                self.insert(name, prompt);
                true
            }
            Err(error) => {
                tracing::warn!(%error, prompt = name, "text-to-speech failed; using the generic prompt");
                false
            }
        }
    }
}

/// A text-to-speech command (`media.tts_command`), with a cache of rendered text.
///
/// The command is split on whitespace into a program and arguments; the argument `{out}` is
/// replaced by the output WAV path and `{text}` by the text (as one argument, no shell).
#[derive(Debug, Clone)]
pub struct Tts {
    argv: Vec<String>,
    cache_dir: PathBuf,
}

impl Tts {
    /// A renderer for `command`, or `None` when the command is empty or its program is not
    /// installed (then callers keep the generic prompt).
    #[must_use]
    pub fn new(command: &str, cache_dir: &Path) -> Option<Self> {
        let argv: Vec<String> = command.split_whitespace().map(str::to_owned).collect();
        let program = argv.first()?;
        if !program_exists(program) {
            tracing::info!(%program, "text-to-speech program not found; generic prompts only");
            return None;
        }
        Some(Self {
            argv,
            cache_dir: cache_dir.to_owned(),
        })
    }

    /// Renders `text` (or loads it from the cache) as a prompt called `name`.
    pub fn render(&self, name: &str, text: &str) -> Result<Prompt, PromptError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| PromptError::Io { path, source }
        };
        std::fs::create_dir_all(&self.cache_dir).map_err(io(&self.cache_dir))?;
        let key = fnv1a(&format!("{}\u{0}{text}", self.argv.join(" ")));
        let cached = self.cache_dir.join(format!("tts-{key:016x}.wav"));
        if let Ok(p) = Prompt::load(&cached) {
            return Ok(Prompt::from_samples(name, p.samples().to_vec()));
        }
        let raw = self
            .cache_dir
            .join(format!(".tts-{key:016x}-{}.raw.wav", std::process::id()));
        let args: Vec<String> = self.argv[1..]
            .iter()
            .map(|a| match a.as_str() {
                "{out}" => raw.display().to_string(),
                "{text}" => text.to_owned(),
                other => other.to_owned(),
            })
            .collect();
        let status = Command::new(&self.argv[0])
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map_err(io(Path::new(&self.argv[0])))?;
        if !status.success() {
            let _ = std::fs::remove_file(&raw);
            return Err(PromptError::Tts {
                program: self.argv[0].clone(),
                status,
            });
        }
        let prompt = Prompt::load(&raw);
        let _ = std::fs::remove_file(&raw);
        let prompt = Prompt::from_samples(name, prompt?.samples().to_vec());
        // Cache atomically: write aside, then rename.
        let tmp = cached.with_extension("wav.part");
        prompt.save(&tmp)?;
        std::fs::rename(&tmp, &cached).map_err(io(&cached))?;
        Ok(prompt)
    }
}

/// Resamples `input` from `from` Hz to `to` Hz with a Hann-windowed sinc low-pass (cut-off at
/// 90 % of the lower Nyquist frequency, 16 zero crossings each side).
#[must_use]
pub fn resample(input: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || input.is_empty() {
        return input.to_vec();
    }
    let ratio = f64::from(from) / f64::from(to);
    let cutoff = 0.9 * f64::from(from.min(to)) / f64::from(from); // in cycles per input sample
    let half = (16.0 / cutoff / 2.0).ceil() as isize;
    let out_len = (input.len() as f64 / ratio).floor() as usize;
    (0..out_len)
        .map(|i| {
            let t = i as f64 * ratio;
            let centre = t.floor() as isize;
            let mut acc = 0.0f64;
            for k in (centre - half)..=(centre + half) {
                let Some(&x) = usize::try_from(k).ok().and_then(|k| input.get(k)) else {
                    continue;
                };
                let d = t - k as f64;
                let w = 0.5 + 0.5 * (std::f64::consts::PI * d / (half as f64 + 1.0)).cos();
                let arg = std::f64::consts::PI * 2.0 * cutoff * d;
                let sinc = if arg.abs() < 1e-9 {
                    1.0
                } else {
                    arg.sin() / arg
                };
                acc += f64::from(x) * 2.0 * cutoff * sinc * w;
            }
            acc as f32
        })
        .collect()
}

fn program_exists(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(program).is_file()))
}

/// FNV-1a: a stable hash for cache file names (std's hasher may change between releases).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_wav(path: &Path, rate: u32, channels: u16, samples: &[i16]) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for &s in samples {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
    }

    #[test]
    fn loads_8k_as_is_and_resamples_others() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wav");
        write_wav(&p, 8000, 1, &[0, 1000, -1000, 32767]);
        let prompt = Prompt::load(&p).unwrap();
        assert_eq!(prompt.samples(), &[0, 1000, -1000, 32767]);
        assert_eq!(prompt.name(), "a");

        // One second of a 440 Hz stereo tone at 22050 Hz becomes one second at 8 kHz with the
        // same frequency and level.
        let p = dir.path().join("b.wav");
        let tone: Vec<i16> = (0..22050)
            .flat_map(|i| {
                let v = (10000.0
                    * (2.0 * std::f64::consts::PI * 440.0 * f64::from(i) / 22050.0).sin())
                    as i16;
                [v, v]
            })
            .collect();
        write_wav(&p, 22050, 2, &tone);
        let prompt = Prompt::load(&p).unwrap();
        assert!((prompt.samples().len() as i64 - 8000).abs() <= 1);
        let peak = prompt.samples()[100..7900]
            .iter()
            .map(|s| s.unsigned_abs())
            .max()
            .unwrap();
        assert!((9000..=11000).contains(&peak), "peak {peak}");
        let crossings = prompt
            .samples()
            .windows(2)
            .filter(|w| (w[0] < 0) != (w[1] < 0))
            .count();
        assert!((870..=890).contains(&crossings), "crossings {crossings}");
    }

    #[test]
    fn refuses_non_wav_and_reports_missing_built_ins() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("greeting.wav");
        std::fs::write(&p, b"not a wav").unwrap();
        let e = Prompt::load(&p).unwrap_err();
        assert!(e.to_string().contains("greeting.wav"), "{e}");
        std::fs::remove_file(&p).unwrap();
        write_wav(&p, 8000, 1, &[0; 8]);
        let e = PromptSet::load(dir.path()).unwrap_err();
        assert!(
            matches!(
                e,
                PromptError::Missing {
                    name: "record_name",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn shipped_prompt_set_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
        let set = PromptSet::load(&dir).expect("shipped prompts load");
        for name in BUILT_IN {
            let p = set.get(name).unwrap();
            assert!(p.duration_ms() >= 100, "{name} too short");
            assert!(
                p.samples().iter().any(|s| s.unsigned_abs() > 1000),
                "{name} is silent"
            );
        }
        assert!(set.digit(7).is_some());
    }

    #[test]
    fn embedded_prompts_are_the_committed_files_and_a_folder_overrides_them_one_by_one() {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
        let from_files = PromptSet::load(&shipped).expect("shipped prompts load");
        let embedded = PromptSet::embedded().expect("embedded prompts decode");
        let mut files: Vec<String> = std::fs::read_dir(&shipped)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "wav"))
            .map(|p| p.file_stem().unwrap().to_str().unwrap().to_owned())
            .collect();
        files.sort();
        let mut names: Vec<String> = EMBEDDED.iter().map(|(n, _)| (*n).to_owned()).collect();
        names.sort();
        assert_eq!(
            names, files,
            "every committed prompt is embedded, nothing else"
        );
        for name in &files {
            assert_eq!(embedded.get(name), from_files.get(name), "{name}");
        }
        for name in BUILT_IN {
            assert!(embedded.get(name).is_some(), "{name}");
        }

        // A folder holding only a greeting: that one prompt changes, the rest stay embedded.
        let dir = tempfile::tempdir().unwrap();
        write_wav(&dir.path().join("greeting.wav"), 8000, 1, &[1234; 800]);
        std::fs::write(dir.path().join("notes.txt"), "not a prompt").unwrap();
        let set = PromptSet::with_overrides(dir.path()).unwrap();
        assert_eq!(set.get("greeting").unwrap().samples(), &[1234; 800][..]);
        assert_eq!(set.get("goodbye"), embedded.get("goodbye"));
        let config = crate::Config {
            prompt_dir: dir.path().display().to_string(),
            ..crate::Config::default()
        };
        let from_config = PromptSet::from_config(&config).unwrap();
        assert_eq!(from_config.get("greeting"), set.get("greeting"));
        let default = PromptSet::from_config(&crate::Config::default()).unwrap();
        assert_eq!(default.get("greeting"), embedded.get("greeting"));
        assert!(PromptSet::with_overrides(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn tts_renders_and_caches_when_espeak_is_installed() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Tts::new("", dir.path()).is_none());
        assert!(Tts::new("/nonexistent/tts {out} {text}", dir.path()).is_none());
        let Some(tts) = Tts::new("espeak-ng -w {out} {text}", dir.path()) else {
            // scripts/test.sh installs espeak-ng and sets STIRGATE_REQUIRE_TOOLS; CI runs it.
            // There a missing program is a failure, not a skip.
            let required = std::env::var_os("CI").is_some_and(|v| v == "true")
                || std::env::var_os("STIRGATE_REQUIRE_TOOLS").is_some_and(|v| v == "1");
            assert!(
                !required,
                "espeak-ng is not installed, but CI=true or STIRGATE_REQUIRE_TOOLS=1 says the \
                 test command installed it"
            );
            eprintln!("espeak-ng not installed; skipping the rendering half");
            return;
        };
        let p = tts
            .render("greeting", "Welcome to Example Corporation")
            .unwrap();
        assert_eq!(p.name(), "greeting");
        assert!(p.duration_ms() > 1000);
        let cached: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(cached.len(), 1, "one cache file, no leftovers");
        let again = tts
            .render("greeting", "Welcome to Example Corporation")
            .unwrap();
        assert_eq!(again.samples(), p.samples());

        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
        let mut set = PromptSet::load(&shipped).unwrap();
        let generic = set.get("greeting").unwrap().clone();
        assert!(
            !set.render_text("greeting", "Hello", None),
            "no TTS: generic stays"
        );
        assert_eq!(set.get("greeting"), Some(&generic));
        assert!(set.render_text("greeting", "Welcome to Example Corporation", Some(&tts)));
        assert_eq!(set.get("greeting").unwrap().samples(), p.samples());
        let broken = Tts {
            argv: vec!["false".to_owned()],
            cache_dir: dir.path().to_owned(),
        };
        assert!(!set.render_text("thank_you", "Thanks", Some(&broken)));
    }
}
