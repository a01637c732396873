//! Storage buffers recycled per device.
//!
//! Every engine operation produces a new latent, so a run allocates a buffer per step. A
//! freshly created wgpu buffer must also be zero-filled before first use, which doubles the
//! memory traffic of a step. Buffers therefore go back to their device's free list when
//! their last handle drops, and later allocations of the same size reuse them. Reuse is safe:
//! all work on a device goes through one queue, and wgpu orders a later submission's writes
//! after an earlier submission's reads of the same buffer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Free buffers kept per size; beyond this, dropped buffers are released to wgpu.
const KEEP_PER_SIZE: usize = 64;

/// A device's free buffers, by size in bytes, and a count of those in use.
#[derive(Debug, Default)]
pub(crate) struct FreeList {
    free: Mutex<HashMap<u64, Vec<wgpu::Buffer>>>,
    in_use: AtomicUsize,
}

impl FreeList {
    /// A free buffer of exactly `size` bytes, if one is kept.
    pub(crate) fn take(&self, size: u64) -> Option<wgpu::Buffer> {
        self.free.lock().ok()?.get_mut(&size)?.pop()
    }

    /// Storage buffers handed out and not yet dropped.
    pub(crate) fn in_use(&self) -> usize {
        self.in_use.load(Ordering::SeqCst)
    }

    fn put(&self, buffer: wgpu::Buffer) {
        if let Ok(mut free) = self.free.lock() {
            let list = free.entry(buffer.size()).or_default();
            if list.len() < KEEP_PER_SIZE {
                list.push(buffer);
            }
        }
    }
}

/// A storage buffer counted in its device's [`FreeList`]; one of ours returns to the list
/// when dropped, one an application handed over ([`GpuBuffer::adopted`]) is released.
#[derive(Debug)]
pub struct GpuBuffer {
    buffer: Option<wgpu::Buffer>,
    free: Arc<FreeList>,
    recycle: bool,
}

impl GpuBuffer {
    pub(crate) fn new(buffer: wgpu::Buffer, free: Arc<FreeList>) -> Self {
        free.in_use.fetch_add(1, Ordering::SeqCst);
        Self {
            buffer: Some(buffer),
            free,
            recycle: true,
        }
    }

    /// An application's buffer: counted while alive, never reused for our own latents.
    pub(crate) fn adopted(buffer: wgpu::Buffer, free: Arc<FreeList>) -> Self {
        let mut adopted = Self::new(buffer, free);
        adopted.recycle = false;
        adopted
    }
}

impl std::ops::Deref for GpuBuffer {
    type Target = wgpu::Buffer;

    fn deref(&self) -> &wgpu::Buffer {
        // Only `drop` takes the buffer out.
        self.buffer
            .as_ref()
            .unwrap_or_else(|| unreachable!("buffer taken before drop"))
    }
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        if let Some(buffer) = self.buffer.take() {
            self.free.in_use.fetch_sub(1, Ordering::SeqCst);
            if self.recycle {
                self.free.put(buffer);
            }
        }
    }
}
