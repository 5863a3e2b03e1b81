//! pki helpers.
