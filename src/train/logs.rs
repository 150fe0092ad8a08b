//! A run folder's two CSV side files: `losses.csv` (one row per read-back step) and
//! `metrics.csv` (one row per epoch). They are written by appending whole rows and are
//! never the source of a number the run computes: epoch means come from memory.
//!
//! A kill can land in the middle of an append, and a user can edit the files, so opening
//! a run folder to resume tolerates anything: a row cut short, a row of garbage, rows of
//! steps the checkpoint has not reached (they will be taken again). Such rows are
//! dropped, the file is rewritten without them (atomically) and the caller is told what
//! was dropped — never a panic.

use std::io::Write;
use std::path::{Path, PathBuf};

/// One CSV file with a fixed header whose rows are all numbers (empty allowed).
pub struct CsvLog {
    pub path: PathBuf,
    header: String,
    columns: usize,
}

/// What opening a side file dropped.
#[derive(Clone, Debug)]
pub struct Repair {
    pub path: PathBuf,
    /// Rows dropped because they were cut short or not numbers (1-based line numbers).
    pub bad_lines: Vec<usize>,
    /// Rows dropped because they lie past the checkpoint.
    pub past_checkpoint: usize,
    /// The header did not match the run's columns: the whole file was started anew.
    pub replaced_header: bool,
    /// The header was this run's without its last columns (a run of an earlier vaegan):
    /// the rows were kept, these columns added to them empty.
    pub added_columns: Vec<String>,
}

impl std::fmt::Display for Repair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = vec![];
        if self.replaced_header {
            parts.push("its header does not match this run's columns: started anew".to_string());
        }
        if !self.added_columns.is_empty() {
            parts.push(format!("added the column(s) {}, empty in its earlier rows", self.added_columns.join(", ")));
        }
        if !self.bad_lines.is_empty() {
            let shown: Vec<String> = self.bad_lines.iter().take(5).map(|l| l.to_string()).collect();
            let more = if self.bad_lines.len() > 5 { format!(" and {} more", self.bad_lines.len() - 5) } else { String::new() };
            parts.push(format!("dropped {} row(s) cut short or unreadable (line {}{more})", self.bad_lines.len(), shown.join(", ")));
        }
        if self.past_checkpoint > 0 {
            parts.push(format!("dropped {} row(s) past the checkpoint (they are taken again)", self.past_checkpoint));
        }
        write!(f, "{}: {}", self.path.display(), parts.join("; "))
    }
}

/// A parsed row: its first column (step or epoch) and the rest (None where empty).
pub type Row = (u64, Vec<Option<f64>>);

impl CsvLog {
    pub fn new(path: PathBuf, header: String) -> Self {
        let columns = header.split(',').count();
        CsvLog { path, header, columns }
    }

    /// Starts the file anew with its header (a new run).
    pub fn create(&self) -> std::io::Result<()> {
        write_atomically(&self.path, format!("{}\n", self.header))
    }

    /// Opens the file of a resumed run: the well-formed rows whose first column is at most
    /// `keep_through`, in order. Anything else is dropped from the file and reported.
    pub fn reopen(&self, keep_through: u64) -> std::io::Result<(Vec<Row>, Option<Repair>)> {
        let text = match std::fs::read(&self.path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.create()?;
                return Ok((vec![], None));
            }
            Err(e) => return Err(e),
        };
        let (rows, repair) = self.read_rows(&text, keep_through);
        match repair {
            Some(repair) => {
                write_atomically(&self.path, self.render(&rows))?;
                Ok((rows, Some(repair)))
            }
            None => Ok((rows, None)),
        }
    }

    /// The rows `reopen` keeps from a file's text, and what it drops (None when the text
    /// needs no repair). What the fuzz target calls.
    pub fn read_rows(&self, text: &str, keep_through: u64) -> (Vec<Row>, Option<Repair>) {
        let mut repair = Repair { path: self.path.clone(), bad_lines: vec![], past_checkpoint: 0, replaced_header: false, added_columns: vec![] };
        let mut lines = text.split('\n');
        let header = lines.next().unwrap_or("").trim_end_matches('\r');
        let mut rows = vec![];
        // A header that is this run's without its last columns: the rows are read with the
        // columns they have and the new ones left empty.
        let columns = match self.header.strip_prefix(header).and_then(|rest| rest.strip_prefix(',')) {
            Some(added) if !header.is_empty() => {
                repair.added_columns = added.split(',').map(str::to_string).collect();
                header.split(',').count()
            }
            _ => self.columns,
        };
        if header != self.header && repair.added_columns.is_empty() {
            repair.replaced_header = true;
        } else {
            let ends_cleanly = text.ends_with('\n');
            let lines: Vec<&str> = lines.collect();
            for (i, line) in lines.iter().enumerate() {
                let last = i + 1 == lines.len();
                if last && line.is_empty() {
                    break;
                }
                // A last line without its newline is a row whose append was cut short.
                let cut = last && !ends_cleanly;
                match self.parse(line, columns) {
                    Some(mut row) if !cut => {
                        row.1.resize(self.columns - 1, None);
                        if row.0 <= keep_through && rows.last().is_none_or(|r: &Row| r.0 < row.0) {
                            rows.push(row);
                        } else {
                            repair.past_checkpoint += 1;
                        }
                    }
                    _ => repair.bad_lines.push(i + 2),
                }
            }
        }
        let needed = repair.replaced_header || !repair.added_columns.is_empty() || !repair.bad_lines.is_empty() || repair.past_checkpoint > 0;
        (rows, needed.then_some(repair))
    }

    /// The file's text for `rows`: the header, then a line per row.
    pub fn render(&self, rows: &[Row]) -> String {
        let mut text = format!("{}\n", self.header);
        for row in rows {
            text.push_str(&format_row(row));
            text.push('\n');
        }
        text
    }

    /// A row of `columns` numbers (the first an integer), or None.
    fn parse(&self, line: &str, columns: usize) -> Option<Row> {
        let fields: Vec<&str> = line.trim_end_matches('\r').split(',').collect();
        if fields.len() != columns {
            return None;
        }
        let first: u64 = fields[0].parse().ok()?;
        let rest = fields[1..].iter().map(|f| if f.is_empty() { Some(None) } else { f.parse::<f64>().ok().map(Some) }).collect::<Option<Vec<_>>>()?;
        Some((first, rest))
    }

    /// Appends one row as a single write (a kill may still cut it; `reopen` drops that).
    pub fn append(&self, row: &str) -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().append(true).open(&self.path)?;
        f.write_all(format!("{row}\n").as_bytes())
    }
}

fn format_row((first, rest): &Row) -> String {
    let mut s = first.to_string();
    for v in rest {
        s.push(',');
        if let Some(v) = v {
            s.push_str(&v.to_string());
        }
    }
    s
}

/// `<path>.tmp`, then renamed over `path`: a kill leaves the old file or the new one, and
/// a failed write leaves no temporary file behind.
pub fn write_atomically(path: &Path, bytes: impl AsRef<[u8]>) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, path)).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
