//! Differential: the fast Report scanner and the quick-xml reference must agree on every input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::report::{self, Collect, reference};

fuzz_target!(|data: &[u8]| {
    let mut fast = Collect::default();
    let mut slow = Collect::default();
    let a = report::scan(data, &mut fast);
    let b = reference::read(data, &mut slow);
    match (&a, &b) {
        (Ok(x), Ok(y)) => {
            assert_eq!(x, y);
            assert_eq!(fast, slow);
        }
        (Err(_), Err(_)) => {}
        _ => panic!("fast {a:?} vs reference {b:?}"),
    }
});
