//! A session drawn as one self-contained HTML page: its spans as a waterfall, nested by parent,
//! its events as marks on the same time axis, and its token usage per turn as a chart. The
//! records go into the page as they are read (JSON, the lines themselves), and the page's own
//! script draws them: no network, no external script, and memory bounded while writing.

use std::io::Write;

use super::read::{Kind, Skipped};
use super::{Item, Session};
use crate::error::Error;

/// The page; its script reads the records from where [`DATA`] stands.
const PAGE: &str = include_str!("timeline.html");
const DATA: &str = "/*DATA*/";

/// Writes `json` into a script element of the page: a `<` (only ever inside a JSON string) as
/// `\u003c`, so that nothing in it ends the element.
fn write_escaped(out: &mut impl Write, json: &[u8]) -> std::io::Result<()> {
    for (i, part) in json.split(|b| *b == b'<').enumerate() {
        if i > 0 {
            out.write_all(br"\u003c")?;
        }
        out.write_all(part)?;
    }
    Ok(())
}

impl Session {
    /// Writes the session into `out` as one self-contained HTML page: its spans as a waterfall
    /// (nested by parent; hovering a bar shows the span's attributes), its events as marks on
    /// the same time axis (a lane per name; hovering shows the attributes), and the tokens of
    /// each turn as a chart. Returns the lines skipped.
    pub fn timeline(&self, out: &mut impl Write) -> Result<Skipped, Error> {
        let written = |source| Error::Io {
            what: "cannot write the page".into(),
            source,
        };
        let (head, tail) = PAGE
            .split_once(DATA)
            .expect("the page has a place for data");
        out.write_all(head.as_bytes()).map_err(written)?;
        let id = serde_json::to_string(&self.id).expect("a string serializes");
        write!(out, "{{\"session\":").map_err(written)?;
        write_escaped(out, id.as_bytes()).map_err(written)?;
        write!(out, ",\"records\":[").map_err(written)?;
        let mut skipped = Skipped::default();
        let mut first = true;
        self.each(&mut skipped, |Item { lean, line, .. }| {
            if !matches!(lean.kind, Kind::Span | Kind::Event) {
                return Ok(());
            }
            if !std::mem::take(&mut first) {
                out.write_all(b",\n")?;
            }
            write_escaped(out, line)
        })?;
        out.write_all(b"]}").map_err(written)?;
        out.write_all(tail.as_bytes()).map_err(written)?;
        Ok(skipped)
    }
}
