//! Integration tests of sealkit-ratchet.
