//! Sans-io B2BUA.
