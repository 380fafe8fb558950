//! An instance's budget for what it holds in the host: linear memory summed over all its
//! memories, the number of memories and tables, and table elements summed over all its tables.
//! (Host-side handles are bounded by the resource table's capacity, set beside it.)

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
}

/// A grow past the budget: the call traps with this.
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
        }
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
            return Err(OverBudget {
                limit: Limit::Memory,
                message: format!(
                    "linear memory would pass sandbox.memory_mib ({} MiB, all memories together)",
                    self.limits.memory_bytes >> 20
                ),
            }
            .into());
        }
        self.memory_bytes = total;
        Ok(true)
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
            return Err(OverBudget {
                limit: Limit::TableElements,
                message: format!(
                    "table elements would pass sandbox.max_table_elements ({}, all tables together)",
                    self.limits.table_elements
                ),
            }
            .into());
        }
        self.table_elements = total;
        Ok(true)
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
        let error = b
            .memory_growing(0, 6 * MIB, None)
            .expect_err("a third passes 16 MiB");
        assert!(
            error.to_string().contains("sandbox.memory_mib (16 MiB"),
            "{error}"
        );
        assert!(
            b.memory_growing(6 * MIB, 11 * MIB, None)
                .expect_err("growing one passes")
                .is::<OverBudget>()
        );
        assert!(b.memory_growing(6 * MIB, 8 * MIB, None).expect("within"));
        assert_eq!(b.memory_bytes, 14 * MIB);
    }

    #[test]
    fn table_elements_are_summed_over_every_table() {
        let mut b = budget();
        assert!(b.table_growing(0, 600, None).expect("first"));
        b.table_growing(0, 600, None)
            .expect_err("a second passes 1000");
        assert!(
            b.table_growing(600, 1000, None)
                .expect("one table may use all")
        );
    }
}
