#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sealkit_proto::fuzzing::chat_frame(data));
