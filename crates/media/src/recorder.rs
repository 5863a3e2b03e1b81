//! The recorder: a pure frame consumer that writes the caller's audio to a WAV file (8 kHz mono
//! 16-bit PCM), into a hidden temporary file that is renamed into place only when complete.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::dtmf::Digit;

/// What to record and when to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSpec {
    /// Final file path (`.wav`); the directory must exist.
    pub path: PathBuf,
    /// Longest recording; at the limit it is saved.
    pub max_len: Duration,
    /// A key that ends the recording (typically `#`); the key is not passed to digit collection.
    pub finish_key: Option<Digit>,
    /// Stop after this long without voice (nothing above about -45 dBFS).
    pub silence_timeout: Option<Duration>,
}

impl RecordSpec {
    /// Records to `path` for at most `max_len`, finishing on `#` or after 5 s of silence.
    #[must_use]
    pub fn new(path: PathBuf, max_len: Duration) -> Self {
        Self {
            path,
            max_len,
            finish_key: Digit::from_char('#'),
            silence_timeout: Some(Duration::from_secs(5)),
        }
    }
}

/// Why a recording ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordEnd {
    /// The maximum length was reached.
    MaxLength,
    /// The finish key was pressed.
    FinishKey,
    /// The silence timeout passed.
    Silence,
    /// `stop` was called or the session ended.
    Stopped,
}

/// Why a recording could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Creating, syncing or renaming the file failed.
    #[error("recording {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Writing WAV data failed.
    #[error("recording {path}: {source}")]
    Wav {
        /// The file.
        path: PathBuf,
        /// The encoder's error.
        #[source]
        source: hound::Error,
    },
    /// A recording is already running in this session.
    #[error("a recording is already in progress")]
    Busy,
}

/// Frames above this mean level (≈ -45 dBFS) count as voice for the silence timeout.
const VOICE_LEVEL: u64 = 180;

/// Writes frames to `.<name>.part` beside the final path, renamed into place by
/// [`Recorder::finish`]. Dropping an unfinished recorder deletes the partial file.
pub struct Recorder {
    writer: Option<hound::WavWriter<BufWriter<File>>>,
    tmp: PathBuf,
    path: PathBuf,
    samples: u64,
    max_samples: u64,
}

impl Recorder {
    /// Creates the temporary file (mode 0640 on Unix: not world-readable).
    pub fn create(spec: &RecordSpec) -> Result<Self, RecordError> {
        let path = spec.path.clone();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "recording.wav".to_owned());
        let tmp = path.with_file_name(format!(".{name}.part"));
        let io = |source| RecordError::Io {
            path: tmp.clone(),
            source,
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o640);
        }
        let file = options.open(&tmp).map_err(io)?;
        let spec_wav = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer = hound::WavWriter::new(BufWriter::new(file), spec_wav).map_err(|source| {
            RecordError::Wav {
                path: tmp.clone(),
                source,
            }
        })?;
        Ok(Self {
            writer: Some(writer),
            tmp,
            path,
            samples: 0,
            max_samples: u64::try_from(spec.max_len.as_millis())
                .unwrap_or(u64::MAX)
                .saturating_mul(8),
        })
    }

    /// Appends samples (truncated at the maximum length). Returns whether the frame had voice
    /// and whether the maximum length is now reached.
    pub fn write(&mut self, samples: &[i16]) -> Result<Written, RecordError> {
        let room = usize::try_from(self.max_samples - self.samples).unwrap_or(usize::MAX);
        let take = &samples[..samples.len().min(room)];
        if let Some(w) = self.writer.as_mut() {
            for &s in take {
                w.write_sample(s).map_err(|source| RecordError::Wav {
                    path: self.tmp.clone(),
                    source,
                })?;
            }
        }
        self.samples += take.len() as u64;
        let level = if take.is_empty() {
            0
        } else {
            take.iter()
                .map(|s| u64::from(s.unsigned_abs()))
                .sum::<u64>()
                / take.len() as u64
        };
        Ok(Written {
            voiced: level > VOICE_LEVEL,
            full: self.samples >= self.max_samples,
        })
    }

    /// The audio written so far.
    #[must_use]
    pub fn duration(&self) -> Duration {
        Duration::from_millis(self.samples / 8)
    }

    /// Completes the WAV header, syncs the file to disk and renames it into place.
    pub fn finish(mut self) -> Result<(PathBuf, Duration), RecordError> {
        let wav = |source| RecordError::Wav {
            path: self.tmp.clone(),
            source,
        };
        if let Some(w) = self.writer.take() {
            w.finalize().map_err(wav)?;
        }
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| RecordError::Io { path, source }
        };
        File::open(&self.tmp)
            .and_then(|f| f.sync_all())
            .map_err(io(&self.tmp))?;
        std::fs::rename(&self.tmp, &self.path).map_err(io(&self.path))?;
        let duration = self.duration();
        Ok((self.path.clone(), duration))
    }
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("path", &self.path)
            .field("samples", &self.samples)
            .field("max_samples", &self.max_samples)
            .finish_non_exhaustive()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(w) = self.writer.take() {
            // Unfinished: never leave a partial file behind that could pass for a message.
            let _ = w.finalize();
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Deletes the `.<name>.part` files a crash left in `dir` (call at start-up, before any
/// recording starts). Returns how many were removed.
pub fn remove_stale_parts(dir: &Path) -> std::io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(".part") && entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The outcome of [`Recorder::write`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// The samples contained voice (for the silence timeout).
    pub voiced: bool,
    /// The maximum length has been reached.
    pub full: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_aside_then_renames_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("msg.wav");
        let mut r =
            Recorder::create(&RecordSpec::new(path.clone(), Duration::from_millis(100))).unwrap();
        let tmp = dir.path().join(".msg.wav.part");
        assert!(
            tmp.exists() && !path.exists(),
            "only the hidden part file while recording"
        );
        let w = r.write(&[1000; 480]).unwrap();
        assert!(w.voiced && !w.full);
        let w = r.write(&[0; 480]).unwrap();
        assert!(!w.voiced && w.full, "800 samples = 100 ms reached");
        let (p, d) = r.finish().unwrap();
        assert_eq!((p, d), (path.clone(), Duration::from_millis(100)));
        assert!(!tmp.exists());
        let reader = hound::WavReader::open(&path).unwrap();
        assert_eq!(reader.spec().sample_rate, 8000);
        assert_eq!(reader.spec().channels, 1);
        assert_eq!(reader.spec().bits_per_sample, 16);
        assert_eq!(reader.len(), 800);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o007, 0, "not world-readable: {mode:o}");
        }
    }

    #[test]
    fn stale_parts_are_removed_and_messages_kept() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".a.wav.part"), b"half").unwrap();
        std::fs::write(dir.path().join("b.wav"), b"done").unwrap();
        std::fs::write(dir.path().join("c.part"), b"not ours").unwrap();
        assert_eq!(remove_stale_parts(dir.path()).unwrap(), 1);
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["b.wav", "c.part"]);
    }

    #[test]
    fn dropping_unfinished_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("msg.wav");
        let mut r = Recorder::create(&RecordSpec::new(path, Duration::from_secs(10))).unwrap();
        r.write(&[1000; 1600]).unwrap();
        drop(r);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let e = Recorder::create(&RecordSpec::new(
            dir.path().join("nodir/x.wav"),
            Duration::from_secs(1),
        ));
        assert!(matches!(e, Err(RecordError::Io { .. })));
    }
}
