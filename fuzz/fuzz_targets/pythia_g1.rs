#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sealkit_pythia::fuzzing::fuzz_g1(data));
