//! An instance's budget for what it holds in the host: linear memory summed over all its
//! memories, the number of memories and tables, and table elements summed over all its tables.
//! (Host-side handles are bounded by the resource table's capacity, set beside it.)
//!
//! A grow past the budget fails inside the plugin, as the WebAssembly spec lets a grow fail
//! (`memory.grow` and `table.grow` return -1), so that a runtime with a garbage collector can
//! collect and go on. The refusal is kept: if the call then traps (an allocator that gives up),
//! its fault names the limit and the key that raises it.

use wasmtime::ResourceLimiter;

use crate::stats::Limit;

/// What one instance may hold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Linear memory, in bytes, all memories together.
    pub memory_bytes: usize,
    /// Linear memories.
    pub memories: usize,
    /// Tables.
    pub tables: usize,
    /// Table elements, all tables together.
    pub table_elements: usize,
}

/// [`Limits`] and what is used of them.
pub(super) struct Budget {
    limits: Limits,
    memory_bytes: usize,
    table_elements: usize,
    /// The first grow refused since the last [`Budget::take_refused`].
    refused: Option<OverBudget>,
    /// What was used before the last grow approved, given back if wasmtime then fails it (past
    /// a memory's own maximum, say).
    memory_before: usize,
    table_elements_before: usize,
}

/// A grow refused because it would pass the budget.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(super) struct OverBudget {
    pub limit: Limit,
    message: String,
}

impl Budget {
    pub fn new(limits: Limits) -> Self {
        Budget {
            limits,
            memory_bytes: 0,
            table_elements: 0,
            refused: None,
            memory_before: 0,
            table_elements_before: 0,
        }
    }

    /// The first grow refused since the last call of this (one call's worth, when called as
    /// each call starts).
    pub fn take_refused(&mut self) -> Option<OverBudget> {
        self.refused.take()
    }

    /// Refuses a grow: it fails inside the plugin, and `over` is kept (the first of a call).
    fn refuse(&mut self, limit: Limit, message: String) -> wasmtime::Result<bool> {
        self.refused.get_or_insert(OverBudget { limit, message });
        Ok(false)
    }
}

impl ResourceLimiter for Budget {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = (self.memory_bytes - current.min(self.memory_bytes)).saturating_add(desired);
        if total > self.limits.memory_bytes {
            return self.refuse(
                Limit::Memory,
                format!(
                    "linear memory would pass sandbox.memory_mib ({} MiB, all memories together)",
                    self.limits.memory_bytes >> 20
                ),
            );
        }
        self.memory_before = std::mem::replace(&mut self.memory_bytes, total);
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _: wasmtime::Error) -> wasmtime::Result<()> {
        self.memory_bytes = self.memory_before;
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total =
            (self.table_elements - current.min(self.table_elements)).saturating_add(desired);
        if total > self.limits.table_elements {
            return self.refuse(
                Limit::TableElements,
                format!(
                    "table elements would pass sandbox.max_table_elements ({}, all tables together)",
                    self.limits.table_elements
                ),
            );
        }
        self.table_elements_before = std::mem::replace(&mut self.table_elements, total);
        Ok(true)
    }

    fn table_grow_failed(&mut self, _: wasmtime::Error) -> wasmtime::Result<()> {
        self.table_elements = self.table_elements_before;
        Ok(())
    }

    fn memories(&self) -> usize {
        self.limits.memories
    }

    fn tables(&self) -> usize {
        self.limits.tables
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    fn budget() -> Budget {
        Budget::new(Limits {
            memory_bytes: 16 * MIB,
            memories: 4,
            tables: 4,
            table_elements: 1000,
        })
    }

    #[test]
    fn memory_is_summed_over_every_memory() {
        let mut b = budget();
        assert!(b.memory_growing(0, 6 * MIB, None).expect("first"));
        assert!(b.memory_growing(0, 6 * MIB, None).expect("second"));
        assert!(b.take_refused().is_none());
        // A third passes 16 MiB: refused, not trapped, and the refusal kept.
        assert!(!b.memory_growing(0, 6 * MIB, None).expect("refused"));
        assert!(
            !b.memory_growing(6 * MIB, 11 * MIB, None)
                .expect("growing one passes")
        );
        let refused = b.take_refused().expect("the first refusal");
        assert_eq!(refused.limit, Limit::Memory);
        assert!(
            refused.to_string().contains("sandbox.memory_mib (16 MiB"),
            "{refused}"
        );
        assert!(b.take_refused().is_none(), "taken once");
        assert!(b.memory_growing(6 * MIB, 8 * MIB, None).expect("within"));
        assert_eq!(b.memory_bytes, 14 * MIB);
        // A grow approved, then failed by wasmtime (past the memory's own maximum): given back.
        assert!(b.memory_growing(8 * MIB, 10 * MIB, None).expect("within"));
        b.memory_grow_failed(wasmtime::Error::msg("past its maximum"))
            .expect("noted");
        assert_eq!(b.memory_bytes, 14 * MIB);
    }

    #[test]
    fn table_elements_are_summed_over_every_table() {
        let mut b = budget();
        assert!(b.table_growing(0, 600, None).expect("first"));
        assert!(!b.table_growing(0, 600, None).expect("a second passes 1000"));
        assert_eq!(b.take_refused().expect("kept").limit, Limit::TableElements);
        assert!(
            b.table_growing(600, 1000, None)
                .expect("one table may use all")
        );
    }
}
