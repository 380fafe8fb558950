//! The constants of the batch layout (documented in `wit/exporter.wit`), shared by its encoder
//! (`encode`) and its reader (`view`).

/// The kinds of records, as their first byte.
pub(crate) mod kind {
    pub const RESOURCE: u8 = 0;
    pub const EVENT: u8 = 1;
    pub const SPAN: u8 = 2;
    pub const METRIC: u8 = 3;
}

/// The tags of values.
pub(crate) mod tag {
    pub const EMPTY: u8 = 0;
    pub const STRING: u8 = 1;
    pub const BOOL: u8 = 2;
    pub const INT: u8 = 3;
    pub const DOUBLE: u8 = 4;
    pub const BYTES: u8 = 5;
    pub const ARRAY: u8 = 6;
    pub const MAP: u8 = 7;
}

/// How deeply lists may nest: a value's arrays and maps inside the lists of its record. The
/// encoder writes a value that would nest deeper as empty.
pub const MAX_DEPTH: u8 = 32;
