//! The `.npy` reader on arbitrary bytes: an array or an error, never a panic, and an array
//! that writes back to the same values.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(array) = chords::npy::parse(bytes) {
        assert_eq!(array.shape.iter().product::<usize>(), array.data.len());
        let again = chords::npy::to_bytes(&array.shape, &array.data).expect("writes back");
        let reread = chords::npy::parse(&again).expect("reads back");
        assert_eq!(reread.shape, array.shape);
        assert!(reread.data.iter().zip(&array.data).all(|(a, b)| a.to_bits() == b.to_bits()));
    }
});
