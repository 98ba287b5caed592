//! A slab of connections with generation counters: stable indices for epoll tokens, and ids
//! that can tell a connection from a later one that reused its slot.
//!
//! An event loop hands out the index of a connection as its epoll token, and the pair
//! (index, generation) as its [`Id`] to whoever may answer later from another thread (a
//! backend slot granted to a queued request, a cache fill that finished) or from a timer.
//! When the connection closes its slot is reused with the next generation, so a late answer
//! for the old one is recognised and dropped instead of reaching a stranger.

/// A connection's identity within one loop: its slot and the slot's generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Id {
    pub index: usize,
    pub generation: u32,
}

struct Entry<T> {
    generation: u32,
    value: Option<T>,
}

pub(crate) struct Slab<T> {
    entries: Vec<Entry<T>>,
    free: Vec<usize>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            entries: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    /// Stores `value`, returning its id.
    pub(crate) fn insert(&mut self, value: T) -> Id {
        self.len += 1;
        if let Some(index) = self.free.pop() {
            let entry = &mut self.entries[index];
            entry.generation = entry.generation.wrapping_add(1);
            entry.value = Some(value);
            return Id {
                index,
                generation: entry.generation,
            };
        }
        self.entries.push(Entry {
            generation: 0,
            value: Some(value),
        });
        Id {
            index: self.entries.len() - 1,
            generation: 0,
        }
    }

    pub(crate) fn remove(&mut self, index: usize) -> Option<T> {
        let value = self.entries.get_mut(index)?.value.take()?;
        self.free.push(index);
        self.len -= 1;
        Some(value)
    }

    /// The value at `index`, whatever its generation (epoll tokens carry no generation).
    pub(crate) fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        self.entries.get_mut(index)?.value.as_mut()
    }

    pub(crate) fn get(&self, index: usize) -> Option<&T> {
        self.entries.get(index)?.value.as_ref()
    }

    /// The value only if it is still the one `id` named.
    pub(crate) fn get_by_id(&mut self, id: Id) -> Option<&mut T> {
        let entry = self.entries.get_mut(id.index)?;
        if entry.generation != id.generation {
            return None;
        }
        entry.value.as_mut()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Indices of every value, for sweeps (collected, so the caller may remove while going).
    pub(crate) fn indices(&self) -> Vec<usize> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.value.is_some())
            .map(|(i, _)| i)
            .collect()
    }

    /// Gives memory back after a burst: drops free slots at the end.
    pub(crate) fn shrink(&mut self) {
        while matches!(self.entries.last(), Some(e) if e.value.is_none()) {
            self.entries.pop();
        }
        let len = self.entries.len();
        self.free.retain(|&i| i < len);
        if self.entries.capacity() > 2 * self.entries.len() + 64 {
            self.entries.shrink_to_fit();
            self.free.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_slot_has_a_new_generation() {
        let mut slab = Slab::default();
        let a = slab.insert("a");
        assert_eq!(slab.len(), 1);
        assert_eq!(slab.remove(a.index), Some("a"));
        let b = slab.insert("b");
        assert_eq!(b.index, a.index);
        assert_ne!(b.generation, a.generation);
        assert!(slab.get_by_id(a).is_none(), "the old id no longer answers");
        assert_eq!(slab.get_by_id(b).copied(), Some("b"));
    }

    #[test]
    fn shrink_drops_trailing_free_slots_only() {
        let mut slab = Slab::default();
        let ids: Vec<Id> = (0..10).map(|i| slab.insert(i)).collect();
        for id in &ids[5..] {
            slab.remove(id.index);
        }
        slab.remove(ids[1].index);
        slab.shrink();
        assert_eq!(slab.indices(), vec![0, 2, 3, 4]);
        let again = slab.insert(99);
        assert_eq!(again.index, 1, "the hole in the middle is reused first");
        assert!(slab.remove(42).is_none());
    }
}
