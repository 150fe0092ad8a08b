//! Labels for a folder of images: binary attributes per image ("Eyeglasses", "red",
//! "circle"), read from a labels file and joined to the folder's images by file name.
//!
//! Two formats:
//! - CelebA's `list_attr_celeba.txt`: a line with the number of images, a line of attribute
//!   names, then per image its file name and 1 or -1 per attribute (whitespace-separated).
//! - A CSV file with a header and a `file` column (the shapes set's `factors.csv`). Every
//!   other column becomes attributes by what it holds: only 0/1 (or -1/1) values, one
//!   attribute named by the column; text, one attribute per distinct value (one-hot: the
//!   shapes set's `colour` column gives "red", "green", …, named `column=value` where two
//!   columns share a value); only numbers, no attribute (continuous factors such as
//!   position are recorded, not attributes).
//!
//! A file name is the image's path relative to the folder (`/`-separated), or its bare
//! name. Every image needs exactly one line and every line an image: anything else is an
//! error that names the labels file, the line and what was expected.
//!
//! IDX label files (MNIST's digits) are classes, read by `idx`; `Attributes::one_hot` turns
//! them into attributes "0" … "9" for the commands that work with attributes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{DataError, Result};

/// Labels files looked for inside an image folder, in this order.
pub const FILE_NAMES: [&str; 3] = ["list_attr_celeba.txt", "factors.csv", "labels.csv"];

/// A CSV column with more distinct text values than this is refused: one-hot attributes
/// of a free-text or identifier column would be meaningless.
pub const MAX_CATEGORIES: usize = 256;

/// Binary attributes of a set of images.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attributes {
    /// One name per attribute, unique.
    pub names: Vec<String>,
    /// The column each attribute came from (its own name for CelebA's and 0/1 columns).
    pub columns: Vec<String>,
    /// count × names.len(), row-major: 1 where the image has the attribute, else 0.
    pub values: Vec<u8>,
    /// The labels file, for messages.
    pub source: String,
}

impl Attributes {
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Images described.
    pub fn count(&self) -> usize {
        self.values.len() / self.names.len().max(1)
    }

    /// Image `i`'s attributes.
    pub fn row(&self, i: usize) -> &[u8] {
        &self.values[i * self.len()..(i + 1) * self.len()]
    }

    /// Whether image `i` has attribute `a`.
    pub fn has(&self, i: usize, a: usize) -> bool {
        self.values[i * self.len() + a] != 0
    }

    /// The rows `ids`, in that order.
    pub fn pick(&self, ids: &[usize]) -> Attributes {
        let values = ids.iter().flat_map(|&i| self.row(i).iter().copied()).collect();
        Attributes { values, ..self.clone() }
    }

    /// The first `n` rows.
    pub fn truncate(&mut self, n: usize) {
        let keep = n.min(self.count()) * self.len();
        self.values.truncate(keep);
    }

    /// Class labels as one attribute per class, named by its number ("0" … "9" for MNIST).
    pub fn one_hot(labels: &[u8], classes: usize, source: &str) -> Attributes {
        let names: Vec<String> = (0..classes).map(|c| c.to_string()).collect();
        let values = labels.iter().flat_map(|&l| (0..classes).map(move |c| (c == l as usize) as u8)).collect();
        Attributes { columns: vec!["class".into(); classes], names, values, source: source.to_string() }
    }

    /// The attribute a user named: its name, or `column=value` for a CSV category.
    pub fn find(&self, name: &str) -> std::result::Result<usize, String> {
        if let Some(a) = self.names.iter().position(|n| n == name) {
            return Ok(a);
        }
        if let Some((column, value)) = name.split_once('=') {
            if let Some(a) = (0..self.len()).find(|&a| self.columns[a] == column && self.names[a].rsplit('=').next() == Some(value)) {
                return Ok(a);
            }
        }
        let mut known = self.names.join(", ");
        if known.len() > 600 {
            known = format!("{}…", &known[..known.char_indices().take_while(|(i, _)| *i < 600).last().map_or(0, |(i, _)| i)]);
        }
        Err(format!("no attribute {name:?} in {} (it has: {known})", self.source))
    }
}

/// A labels file as read: attribute names and one row per listed file.
#[derive(Clone, Debug)]
pub struct LabelTable {
    pub path: PathBuf,
    pub names: Vec<String>,
    pub columns: Vec<String>,
    /// The listed file names, with the line each came from.
    pub files: Vec<(String, usize)>,
    /// files.len() × names.len().
    pub values: Vec<u8>,
    /// CSV columns that gave no attribute (numeric), for messages.
    pub skipped: Vec<String>,
}

fn at_line(path: &Path, line: usize, detail: impl std::fmt::Display) -> DataError {
    DataError::new(path, format!("line {line}: {detail}"))
}

/// Reads a labels file: `.csv` as CSV, anything else as CelebA's attribute list.
pub fn read(path: &Path) -> Result<LabelTable> {
    let bytes = std::fs::read(path).map_err(|e| DataError::new(path, format!("cannot read the labels file: {e}")))?;
    let is_csv = path.extension().and_then(|x| x.to_str()).is_some_and(|x| x.eq_ignore_ascii_case("csv"));
    if is_csv {
        parse_csv(path, &bytes)
    } else {
        let text = std::str::from_utf8(&bytes)
            .map_err(|e| DataError::new(path, format!("not UTF-8 text ({e}): expected CelebA's list_attr_celeba.txt format or a .csv file")))?;
        parse_celeba(path, text)
    }
}

/// The labels file inside `dir`, if it has one (`FILE_NAMES`).
pub fn find_in(dir: &Path) -> Option<PathBuf> {
    FILE_NAMES.iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

/// CelebA's attribute list: count, names, then `file ±1 ±1 …` per image.
pub fn parse_celeba(path: &Path, text: &str) -> Result<LabelTable> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())).filter(|(_, l)| !l.is_empty());
    let (n, first) =
        lines.next().ok_or_else(|| DataError::new(path, "empty labels file: expected a count line, a line of attribute names, then a line per image"))?;
    let count: usize =
        first.parse().map_err(|_| at_line(path, n, format!("{first:?}: expected the number of images (CelebA's list_attr_celeba.txt format)")))?;
    let (n, header) = lines.next().ok_or_else(|| DataError::new(path, "no line of attribute names after the count"))?;
    let names: Vec<String> = header.split_whitespace().map(String::from).collect();
    if let Some(dup) = names.iter().enumerate().find(|(i, a)| names[..*i].contains(a)) {
        return Err(at_line(path, n, format!("attribute {:?} is named twice", dup.1)));
    }
    let a = names.len();
    // The count is the file's word, not yet checked: room for at most a row per two bytes of
    // text, so that a count of 10^16 is an error below and not an allocation (found by the
    // `labels_celeba` fuzz target).
    let rows = count.min(text.len() / 2 + 1);
    let mut files = Vec::with_capacity(rows);
    let mut values = Vec::with_capacity(rows.saturating_mul(a).min(text.len()));
    for (n, line) in lines {
        let mut fields = line.split_whitespace();
        let file = fields.next().unwrap_or_default();
        let row: Vec<&str> = fields.collect();
        if row.len() != a {
            return Err(at_line(path, n, format!("{} values for {file}, expected {a} (one per attribute named on the second line)", row.len())));
        }
        for (v, name) in row.iter().zip(&names) {
            values.push(match *v {
                "1" => 1,
                "-1" => 0,
                _ => return Err(at_line(path, n, format!("value {v:?} of {name} for {file}: expected 1 or -1"))),
            });
        }
        files.push((file.to_string(), n));
    }
    if files.len() != count {
        return Err(DataError::new(path, format!("the first line announces {count} images, but {} lines of labels follow", files.len())));
    }
    check_unique(path, &files)?;
    Ok(LabelTable { path: path.to_path_buf(), columns: names.clone(), names, files, values, skipped: vec![] })
}

fn check_unique(path: &Path, files: &[(String, usize)]) -> Result<()> {
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(files.len());
    for (f, line) in files {
        if let Some(first) = seen.insert(f, *line) {
            return Err(at_line(path, *line, format!("{f} is listed again (first on line {first})")));
        }
    }
    Ok(())
}

/// What a CSV column holds.
enum Column {
    /// Only 0/1 or -1/1: one attribute.
    Binary,
    /// Only numbers: no attribute.
    Numeric,
    /// Text: one attribute per value, sorted.
    Categories(Vec<String>),
}

fn classify(values: &[&str]) -> Column {
    if values.iter().all(|v| *v == "0" || *v == "1") || values.iter().all(|v| *v == "-1" || *v == "1") {
        Column::Binary
    } else if values.iter().all(|v| v.parse::<f64>().is_ok()) {
        Column::Numeric
    } else {
        let mut c: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        c.sort();
        c.dedup();
        Column::Categories(c)
    }
}

/// A CSV file with a header and a `file` column; the other columns become attributes by
/// what they hold (see the module's comment).
pub fn parse_csv(path: &Path, bytes: &[u8]) -> Result<LabelTable> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(false).trim(csv::Trim::All).from_reader(bytes);
    let csv_error = |e: csv::Error| -> DataError {
        let line = e.position().map(|p| p.line() as usize);
        let detail = match e.kind() {
            csv::ErrorKind::UnequalLengths { expected_len, len, .. } => format!("{len} fields, expected {expected_len} (as many as the header has)"),
            csv::ErrorKind::Utf8 { .. } => "not UTF-8 text".to_string(),
            _ => e.to_string(),
        };
        match line {
            Some(l) => at_line(path, l, detail),
            None => DataError::new(path, detail),
        }
    };
    let header: Vec<String> = reader.headers().map_err(csv_error)?.iter().map(String::from).collect();
    let file_col =
        header.iter().position(|h| h == "file").ok_or_else(|| at_line(path, 1, format!("no `file` column in the header (found: {})", header.join(", "))))?;
    if let Some(dup) = header.iter().enumerate().find(|(i, h)| header[..*i].contains(h)) {
        return Err(at_line(path, 1, format!("column {:?} is named twice", dup.1)));
    }
    let mut rows = vec![];
    for record in reader.records() {
        let record = record.map_err(csv_error)?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        if let Some((c, _)) = record.iter().enumerate().find(|(_, v)| v.is_empty()) {
            return Err(at_line(path, line, format!("column {:?} is empty", header[c])));
        }
        rows.push((line, record));
    }
    if rows.is_empty() {
        return Err(DataError::new(path, "no rows after the header: expected one per image"));
    }
    let files: Vec<(String, usize)> = rows.iter().map(|(l, r)| (r[file_col].to_string(), *l)).collect();
    check_unique(path, &files)?;
    // Each column's kind, then the attributes' names (a value two columns share is
    // qualified by its column).
    let mut kinds = vec![];
    let mut skipped = vec![];
    for (c, name) in header.iter().enumerate().filter(|(c, _)| *c != file_col) {
        let values: Vec<&str> = rows.iter().map(|(_, r)| &r[c]).collect();
        match classify(&values) {
            Column::Numeric => skipped.push(name.clone()),
            Column::Categories(v) if v.len() > MAX_CATEGORIES => {
                return Err(DataError::new(
                    path,
                    format!(
                        "column {name:?} has {} distinct text values, more than {MAX_CATEGORIES}: it is not a category (remove it from the labels file)",
                        v.len()
                    ),
                ))
            }
            kind => kinds.push((c, name.clone(), kind)),
        }
    }
    let mut plain: Vec<String> = vec![];
    for (_, name, kind) in &kinds {
        match kind {
            Column::Binary => plain.push(name.clone()),
            Column::Categories(v) => plain.extend(v.iter().cloned()),
            Column::Numeric => {}
        }
    }
    let shared = |s: &str| plain.iter().filter(|p| *p == s).count() > 1;
    let (mut names, mut columns) = (vec![], vec![]);
    for (_, name, kind) in &kinds {
        match kind {
            Column::Binary => names.push(name.clone()),
            Column::Categories(v) => names.extend(v.iter().map(|x| if shared(x) { format!("{name}={x}") } else { x.clone() })),
            Column::Numeric => {}
        }
        let added = names.len() - columns.len();
        columns.extend(std::iter::repeat_n(name.clone(), added));
    }
    if names.is_empty() {
        return Err(DataError::new(path, format!("no attribute columns: every column besides `file` holds numbers ({})", skipped.join(", "))));
    }
    // A qualified name can still meet a column or a value spelled the same ("a=x" from column
    // a's shared value x, and a 0/1 column headed "a=x"): two labels under one name would
    // make `--add a=x` mean either, so it is refused, naming both columns.
    if let Some(i) = (0..names.len()).find(|&i| names[..i].contains(&names[i])) {
        let first = names[..i].iter().position(|n| n == &names[i]).unwrap_or(0);
        return Err(at_line(
            path,
            1,
            format!(
                "the attribute {:?} would name two labels (from column {:?} and column {:?}): rename a column or a value so that each has its own name",
                names[i], columns[first], columns[i]
            ),
        ));
    }
    let mut values = Vec::with_capacity(rows.len() * names.len());
    for (_, r) in &rows {
        for (c, _, kind) in &kinds {
            match kind {
                Column::Binary => values.push((&r[*c] == "1") as u8),
                Column::Categories(v) => values.extend(v.iter().map(|x| (x == &r[*c]) as u8)),
                Column::Numeric => {}
            }
        }
    }
    Ok(LabelTable { path: path.to_path_buf(), names, columns, files, values, skipped })
}

/// `file`'s path relative to `root`, `/`-separated.
fn relative(root: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(root).unwrap_or(file);
    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

impl LabelTable {
    /// The attributes of `files` (the folder `root`'s images, in its order): each image's
    /// line found by its relative path, else its bare name. Every image needs one line and
    /// every line one image.
    pub fn for_images(&self, root: &Path, files: &[PathBuf]) -> Result<Attributes> {
        let rows: HashMap<&str, usize> = self.files.iter().enumerate().map(|(i, (f, _))| (f.as_str(), i)).collect();
        let a = self.names.len();
        let mut used: Vec<Option<usize>> = vec![None; self.files.len()];
        let mut values = Vec::with_capacity(files.len() * a);
        for (i, file) in files.iter().enumerate() {
            let rel = relative(root, file);
            let bare = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let row = rows.get(rel.as_str()).or_else(|| rows.get(bare.as_str())).copied().ok_or_else(|| {
                DataError::new(&self.path, format!("no line for the image {rel} of {} (every image in the folder needs one)", root.display()))
            })?;
            if let Some(other) = used[row] {
                return Err(at_line(
                    &self.path,
                    self.files[row].1,
                    format!("{} names two images of the folder: {} and {rel}", self.files[row].0, relative(root, &files[other])),
                ));
            }
            used[row] = Some(i);
            values.extend_from_slice(&self.values[row * a..(row + 1) * a]);
        }
        if let Some(row) = used.iter().position(Option::is_none) {
            let (f, line) = &self.files[row];
            return Err(at_line(&self.path, *line, format!("{f} is not an image in {} (the file is missing from the folder)", root.display())));
        }
        Ok(Attributes { names: self.names.clone(), columns: self.columns.clone(), values, source: self.path.display().to_string() })
    }
}
