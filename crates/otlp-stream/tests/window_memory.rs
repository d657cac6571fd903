//! What a de-duplication window charges for its ids (`DedupWindow::bytes`, and its bound
//! `bound_bytes`, which the relay reserves from its memory budget) is never below the heap
//! the ids really take, measured with a counting allocator, for the longest ids allowed and
//! for the 16-byte ids our senders use.

use otlp_stream::{Admission, DedupWindow, MAX_BATCH_ID_BYTES};
use otlp_testkit::memory::{CountingAllocator, heap_in_use};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

#[test]
fn the_charge_covers_the_heap_the_ids_take() {
    for id_len in [MAX_BATCH_ID_BYTES, 16, 8] {
        for count in [1_000usize, 4_097, 20_000] {
            let before = heap_in_use();
            let mut window = DedupWindow::new(count);
            for n in 0..count {
                let mut id = vec![0u8; id_len];
                for (i, byte) in (n as u64).to_le_bytes().iter().enumerate().take(id_len) {
                    id[i] = *byte;
                }
                assert_eq!(window.admit(&id), Admission::Fresh);
                window.settle(&id, true);
            }
            let held = heap_in_use().saturating_sub(before);
            let charged = window.bytes();
            eprintln!("{count} ids of {id_len} bytes: {held} bytes held, {charged} charged");
            assert!(
                held <= charged,
                "{count} ids of {id_len} bytes take {held} bytes, {charged} charged"
            );
            assert!(charged <= window.bound_bytes());
            drop(window);
        }
    }
}
