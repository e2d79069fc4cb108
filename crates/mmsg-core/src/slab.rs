//! One block of memory for a whole receive: the layout of a [`RecvTarget`]'s arrays inside a
//! single byte buffer, so that the binding reads one JS `Uint8Array` per receive instead of
//! seven to eleven typed arrays (each read is an N-API call; see `lib/receive.ts`).
//!
//! The layout is decided here only: the TS layer asks for it (`recvLayout`) and makes its typed
//! array views at these offsets, so the two sides cannot disagree.

use crate::endpoint::RecvTarget;
use crate::sys;

/// Where each array of a receive slab starts, in bytes from the slab's start. Every offset is a
/// multiple of 8 (so every typed array view is aligned for its element type); `total` is the
/// slab's size. Only [`SlabLayout::new`] makes one, so the offsets always agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlabLayout {
    capacity: usize,
    slot_size: usize,
    metadata: bool,
    data: usize,
    timestamps: usize,
    lengths: usize,
    scope_ids: usize,
    interfaces: usize,
    ports: usize,
    addresses: usize,
    destinations: usize,
    flags: usize,
    tos: usize,
    total: usize,
}

const fn align8(n: usize) -> usize {
    (n + 7) & !7
}

impl SlabLayout {
    /// The layout for `capacity` datagrams of at most `slot_size` bytes, with the metadata
    /// arrays (TOS, destinations, interfaces, timestamps) when `metadata`. Arrays are ordered by
    /// element size, largest first; metadata arrays are empty (zero bytes) without `metadata`.
    pub fn new(capacity: usize, slot_size: usize, metadata: bool) -> Option<SlabLayout> {
        // Far above any real receive (UIO_MAXIOV datagrams of 64 KiB); keeps the sums exact.
        if capacity > 1 << 20 || slot_size > 1 << 20 {
            return None;
        }
        let meta = usize::from(metadata);
        let data = 0;
        let timestamps = align8(capacity.checked_mul(slot_size)?);
        let lengths = timestamps.checked_add(8 * capacity * meta)?;
        let scope_ids = align8(lengths + 4 * capacity);
        let interfaces = align8(scope_ids + 4 * capacity);
        let ports = align8(interfaces + 4 * capacity * meta);
        let addresses = align8(ports + 2 * capacity);
        let destinations = align8(addresses + 16 * capacity);
        let flags = align8(destinations + 16 * capacity * meta);
        let tos = align8(flags + capacity);
        let total = align8(tos + capacity * meta);
        Some(SlabLayout {
            capacity,
            slot_size,
            metadata,
            data,
            timestamps,
            lengths,
            scope_ids,
            interfaces,
            ports,
            addresses,
            destinations,
            flags,
            tos,
            total,
        })
    }

    /// The slab's size in bytes.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The offsets in the order `recvLayout` hands them to JS: data, timestamps, lengths,
    /// scopeIds, interfaces, ports, addresses, destinations, flags, tos, total.
    pub fn offsets(&self) -> [usize; 11] {
        [
            self.data,
            self.timestamps,
            self.lengths,
            self.scope_ids,
            self.interfaces,
            self.ports,
            self.addresses,
            self.destinations,
            self.flags,
            self.tos,
            self.total,
        ]
    }

    /// Cuts `memory` (at least `total` bytes, 8-byte aligned) into a receive target, or `None`
    /// if it is too short or misaligned.
    pub fn target<'a>(&self, memory: &'a mut [u8]) -> Option<RecvTarget<'a>> {
        if memory.len() < self.total || !(memory.as_ptr() as usize).is_multiple_of(8) {
            return None;
        }
        let cap = self.capacity;
        let meta = usize::from(self.metadata);
        let (data, rest) = memory.split_at_mut(self.timestamps);
        let (timestamps, rest) = rest.split_at_mut(self.lengths - self.timestamps);
        let (lengths, rest) = rest.split_at_mut(self.scope_ids - self.lengths);
        let (scope_ids, rest) = rest.split_at_mut(self.interfaces - self.scope_ids);
        let (interfaces, rest) = rest.split_at_mut(self.ports - self.interfaces);
        let (ports, rest) = rest.split_at_mut(self.addresses - self.ports);
        let (addresses, rest) = rest.split_at_mut(self.destinations - self.addresses);
        let (destinations, rest) = rest.split_at_mut(self.flags - self.destinations);
        let (flags, rest) = rest.split_at_mut(self.tos - self.flags);
        let tos = rest.get_mut(..cap * meta)?;
        Some(RecvTarget {
            data: data.get_mut(..cap * self.slot_size)?,
            slot_size: self.slot_size,
            lengths: sys::cast_words_mut::<u32>(lengths)?.get_mut(..cap)?,
            ports: sys::cast_words_mut::<u16>(ports)?.get_mut(..cap)?,
            addresses: addresses.get_mut(..16 * cap)?,
            scope_ids: sys::cast_words_mut::<u32>(scope_ids)?.get_mut(..cap)?,
            flags: flags.get_mut(..cap)?,
            tos,
            destinations: destinations.get_mut(..16 * cap * meta)?,
            interfaces: sys::cast_words_mut::<u32>(interfaces)?.get_mut(..cap * meta)?,
            timestamps: sys::cast_words_mut::<u64>(timestamps)?.get_mut(..cap * meta)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_are_aligned_disjoint_and_inside() {
        for (cap, slot, meta) in [
            (1, 1, false),
            (8, 65535, true),
            (64, 1500, false),
            (3, 7, true),
        ] {
            let layout = SlabLayout::new(cap, slot, meta).unwrap();
            let offsets = layout.offsets();
            assert!(offsets.iter().all(|o| o.is_multiple_of(8)), "{offsets:?}");
            assert!(offsets.windows(2).all(|w| w[0] <= w[1]), "{offsets:?}");
            let mut memory = vec![0u64; layout.total() / 8];
            let bytes = sys::words_as_bytes_mut(&mut memory);
            let target = layout.target(bytes).unwrap();
            assert_eq!(target.capacity(), cap);
            assert_eq!(target.data.len(), cap * slot);
            assert_eq!(target.tos.len(), cap * usize::from(meta));
            assert_eq!(target.timestamps.len(), cap * usize::from(meta));
            assert_eq!(target.destinations.len(), 16 * cap * usize::from(meta));
        }
    }

    #[test]
    fn short_or_misaligned_memory_is_refused() {
        let layout = SlabLayout::new(4, 100, true).unwrap();
        let mut memory = vec![0u64; layout.total() / 8 + 1];
        let bytes = sys::words_as_bytes_mut(&mut memory);
        assert!(layout.target(&mut bytes[..layout.total() - 1]).is_none());
        assert!(layout.target(&mut bytes[1..layout.total() + 1]).is_none());
        assert!(layout.target(&mut bytes[..layout.total()]).is_some());
    }

    #[test]
    fn overflowing_sizes_have_no_layout() {
        assert!(SlabLayout::new(usize::MAX, 2, false).is_none());
        assert!(SlabLayout::new(1 << 21, 1, true).is_none());
        assert!(SlabLayout::new(2, usize::MAX, true).is_none());
    }
}
