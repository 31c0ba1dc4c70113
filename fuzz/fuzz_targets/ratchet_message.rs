#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sealkit_ratchet::fuzzing::message(data));
