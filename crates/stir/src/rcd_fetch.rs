//! The content behind Rich Call Data URLs that `rcdi` digests cover (an icon, a jCard), fetched
//! under the same rules as x5u (https, allowed ports, no private or loopback addresses, no
//! redirects, time and size caps) and cached by URL, so a caller's logo costs one fetch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::fetch::{FetchError, FetchPolicy, Fetcher};
use crate::rcd::{DigestAlg, Integrity};

/// Largest rich-data resource accepted (an icon or a jCard); larger ones fail integrity.
pub(crate) const MAX_CONTENT_BYTES: usize = 256 * 1024;
/// Most URLs remembered.
const MAX_ENTRIES: usize = 4096;
/// Lifetime of a fetched resource when the server gives none, and the upper clamp.
const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// Lifetime of a failed fetch.
const NEGATIVE_TTL: Duration = Duration::from_secs(30);

/// Fetched rich-data content by URL.
#[derive(Debug)]
pub(crate) struct RcdContent {
    fetcher: Fetcher,
    cache: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug, Clone)]
struct Entry {
    until: Instant,
    body: Option<Arc<Content>>,
}

/// A fetched resource, kept as its digests: each is computed once per fetch, not per call (an
/// icon may be 256 KiB).
#[derive(Debug)]
pub(crate) struct Content {
    sha256: Vec<u8>,
    sha384: Vec<u8>,
    sha512: Vec<u8>,
}

impl Content {
    fn of(body: &[u8]) -> Self {
        Self {
            sha256: DigestAlg::Sha256.digest(body),
            sha384: DigestAlg::Sha384.digest(body),
            sha512: DigestAlg::Sha512.digest(body),
        }
    }

    /// Whether this is the content `integrity` names.
    pub(crate) fn satisfies(&self, integrity: &Integrity) -> bool {
        let digest = match integrity.alg {
            DigestAlg::Sha256 => &self.sha256,
            DigestAlg::Sha384 => &self.sha384,
            DigestAlg::Sha512 => &self.sha512,
        };
        *digest == integrity.digest
    }
}

impl RcdContent {
    /// A content cache fetching under `policy` (the x5u rules).
    pub(crate) fn new(policy: FetchPolicy) -> Result<Self, FetchError> {
        Ok(Self {
            fetcher: Fetcher::new(policy)?,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The cached answer for `url`: `Some(Some(body))`, `Some(None)` for a remembered failure,
    /// `None` when it must be fetched.
    pub(crate) fn cached(&self, url: &str) -> Option<Option<Arc<Content>>> {
        let now = Instant::now();
        self.lock()
            .get(url)
            .filter(|e| now < e.until)
            .map(|e| e.body.clone())
    }

    /// Fetches `url` (or answers from the cache); `None` when it cannot be had.
    pub(crate) async fn get(&self, url: &str) -> Option<Arc<Content>> {
        if let Some(answer) = self.cached(url) {
            return answer;
        }
        let fetched = self.fetcher.fetch_limited(url, MAX_CONTENT_BYTES).await;
        let now = Instant::now();
        let entry = match fetched {
            Ok(f) => Entry {
                until: now + f.max_age.unwrap_or(DEFAULT_TTL).min(DEFAULT_TTL),
                body: Some(Arc::new(Content::of(&f.body))),
            },
            Err(e) => {
                tracing::info!(url = %url, error = %e, "rich call data content unavailable");
                Entry {
                    until: now + NEGATIVE_TTL,
                    body: None,
                }
            }
        };
        let body = entry.body.clone();
        let mut cache = self.lock();
        if cache.len() >= MAX_ENTRIES {
            cache.retain(|_, e| e.until > now);
            if cache.len() >= MAX_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(url.to_owned(), entry);
        body
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
